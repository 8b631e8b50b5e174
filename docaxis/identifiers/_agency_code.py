"""Agency identifier codes (mã định danh cơ quan, ``LLL.KK.JJ.XNN``).

The format rule lives in :func:`AgencyCode.parse` and nowhere else: Amendment 1:2022 of
the standard touches identifiers and its character classes are unconfirmed, so a change
there must be a change here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from docaxis._errors import DocaxisError

#: Meaning of the level-1 group letter (EDXML.md §6).
GROUP_LETTERS: Final[dict[str, str]] = {
    "A": "Party bodies (cơ quan Đảng)",
    "B": "Office of the President (Văn phòng Chủ tịch nước)",
    "C": "National Assembly (Quốc hội)",
    "D": "Supreme People's Court (Tòa án nhân dân tối cao)",
    "E": "Supreme People's Procuracy (Viện kiểm sát nhân dân tối cao)",
    "F": "State Audit (Kiểm toán nhà nước)",
    "G": "Ministries and government agencies (bộ, cơ quan ngang bộ, cơ quan thuộc Chính phủ)",
    "H": "Provincial People's Committees (UBND tỉnh, thành phố trực thuộc trung ương)",
    "I": "Central socio-political organisations (tổ chức chính trị - xã hội)",
    "J": "Associations (hội, tổ chức xã hội - nghề nghiệp)",
    "K": "Provincial People's Councils (HĐND tỉnh, thành phố trực thuộc trung ương)",
}

#: Group letters whose number is a province number and so is limited to 01–63.
_PROVINCIAL_GROUPS: Final = frozenset("HK")
_PART_LENGTHS: Final = (3, 2, 2, 3)
_PART_NAMES: Final = ("LLL (level 4)", "KK (level 3)", "JJ (level 2)", "XNN (level 1)")


_NN = "(0[1-9]|[1-9][0-9])"
#: The same rule as :meth:`AgencyCode.parse`, as an XSD/regex pattern (whole string).
#: ``tests/test_identifiers.py`` checks that the two agree on generated inputs.
XSD_PATTERN: Final = (
    "(000\\.00\\.00"
    f"|000\\.00\\.{_NN}"
    f"|000\\.{_NN}\\.{_NN}"
    f"|(00[1-9]|0[1-9][0-9]|[1-9][0-9]{{2}})\\.{_NN}\\.{_NN})"
    f"\\.([A-GIJ]{_NN}|[HK](0[1-9]|[1-5][0-9]|6[0-3]))"
)


class InvalidAgencyCode(DocaxisError, ValueError):
    """A string is not a well-formed agency identifier code.

    ``value`` holds the offending string and ``reason`` the precise rule it breaks.
    """

    default_code = "EDX-ID-FORMAT"

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"{value!r} is not a valid agency code (LLL.KK.JJ.XNN): {reason}")
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True, order=True)
class AgencyCode:
    """A parsed agency identifier code ``LLL.KK.JJ.XNN``, written lowest level first.

    ``XNN`` is level 1 (group letter + two digits), ``JJ`` level 2, ``KK`` level 3 and
    ``LLL`` level 4; unused levels are zeros. Which tier of the axis (province, district,
    commune) an agency belongs to is a fact of the directory, not of the code.

    Examples
    --------
    >>> code = AgencyCode.parse("000.05.11.H53")
    >>> code.level, str(code.parent)
    (3, '000.00.11.H53')
    >>> code.group, code.group_number
    ('H', 53)
    """

    level4: int
    level3: int
    level2: int
    group: str
    group_number: int

    @classmethod
    def parse(cls, value: str) -> AgencyCode:
        """Parse and validate ``value``.

        Raises
        ------
        InvalidAgencyCode
            With a reason naming the first rule broken (part count, part length,
            non-digits, unknown group letter, number out of range, a gap in levels).
        """
        if not isinstance(value, str):
            raise InvalidAgencyCode(repr(value), "not a string")
        parts = value.split(".")
        if len(parts) != 4:
            raise InvalidAgencyCode(
                value,
                f"expected 4 dot-separated parts, found {len(parts)} "
                f"({', '.join(repr(p) for p in parts)})",
            )
        for part, expected, name in zip(parts, _PART_LENGTHS, _PART_NAMES, strict=True):
            if len(part) != expected:
                raise InvalidAgencyCode(
                    value, f"part {name} must have {expected} characters, found {part!r}"
                )
        lll, kk, jj, xnn = parts
        for part, name in ((lll, _PART_NAMES[0]), (kk, _PART_NAMES[1]), (jj, _PART_NAMES[2])):
            if not (part.isascii() and part.isdigit()):
                raise InvalidAgencyCode(value, f"part {name} must be digits, found {part!r}")
        letter, number = xnn[0], xnn[1:]
        if letter not in GROUP_LETTERS:
            known = "".join(GROUP_LETTERS)
            raise InvalidAgencyCode(
                value, f"group letter {letter!r} is not one of {known[0]}–{known[-1]}"
            )
        if not (number.isascii() and number.isdigit()):
            raise InvalidAgencyCode(value, f"group number must be two digits, found {number!r}")
        group_number = int(number)
        if group_number == 0:
            raise InvalidAgencyCode(value, "group number 00 does not name an agency")
        if letter in _PROVINCIAL_GROUPS and group_number > 63:
            raise InvalidAgencyCode(
                value, f"group {letter} numbers provinces 01–63, found {number}"
            )
        l4, l3, l2 = int(lll), int(kk), int(jj)
        if (l4 and not l3) or ((l4 or l3) and not l2):
            raise InvalidAgencyCode(
                value, "a higher level is set while a level below it is zero"
            )
        return cls(l4, l3, l2, letter, group_number)

    @classmethod
    def is_valid(cls, value: str) -> bool:
        """Return whether ``value`` parses (without raising)."""
        try:
            cls.parse(value)
        except InvalidAgencyCode:
            return False
        return True

    def __str__(self) -> str:
        return (
            f"{self.level4:03d}.{self.level3:02d}.{self.level2:02d}."
            f"{self.group}{self.group_number:02d}"
        )

    @property
    def level(self) -> int:
        """1 for a root agency (``000.00.00.XNN``) up to 4 for ``LLL`` set."""
        if self.level4:
            return 4
        if self.level3:
            return 3
        if self.level2:
            return 2
        return 1

    @property
    def is_root(self) -> bool:
        """Whether this is a level-1 agency (a ministry, a province, ...)."""
        return self.level == 1

    @property
    def parent(self) -> AgencyCode | None:
        """The code with the lowest non-zero level zeroed; ``None`` for a root."""
        if self.level4:
            return AgencyCode(0, self.level3, self.level2, self.group, self.group_number)
        if self.level3:
            return AgencyCode(0, 0, self.level2, self.group, self.group_number)
        if self.level2:
            return AgencyCode(0, 0, 0, self.group, self.group_number)
        return None

    @property
    def ancestors(self) -> tuple[AgencyCode, ...]:
        """Parents from the nearest up to the root."""
        chain: list[AgencyCode] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return tuple(chain)

    @property
    def root(self) -> AgencyCode:
        """The level-1 agency this code belongs to."""
        return AgencyCode(0, 0, 0, self.group, self.group_number)

    @property
    def group_meaning(self) -> str:
        """What the group letter stands for, in English with the Vietnamese term."""
        return GROUP_LETTERS[self.group]

    def is_ancestor_of(self, other: AgencyCode) -> bool:
        """Whether ``self`` is a strict ancestor of ``other``."""
        return self in other.ancestors
