from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docaxis.identifiers import XSD_PATTERN, AgencyCode, InvalidAgencyCode


@pytest.mark.parametrize(
    ("code", "level", "parent"),
    [
        ("000.00.00.H53", 1, None),
        ("000.00.11.H53", 2, "000.00.00.H53"),
        ("000.05.11.H53", 3, "000.00.11.H53"),
        ("012.05.11.H53", 4, "000.05.11.H53"),
        ("000.00.00.G22", 1, None),
    ],
)
def test_level_and_parent(code: str, level: int, parent: str | None) -> None:
    parsed = AgencyCode.parse(code)
    assert str(parsed) == code
    assert parsed.level == level
    assert (str(parsed.parent) if parsed.parent else None) == parent
    assert parsed.is_root is (level == 1)


def test_ancestors_run_up_to_the_root() -> None:
    code = AgencyCode.parse("012.05.11.H53")
    assert [str(a) for a in code.ancestors] == ["000.05.11.H53", "000.00.11.H53", "000.00.00.H53"]
    assert code.root == AgencyCode.parse("000.00.00.H53")
    assert AgencyCode.parse("000.00.11.H53").is_ancestor_of(code)
    assert not code.is_ancestor_of(AgencyCode.parse("000.00.11.H53"))


def test_group_meaning() -> None:
    assert "Provincial People's Committees" in AgencyCode.parse("000.00.00.H41").group_meaning
    assert "Ministries" in AgencyCode.parse("000.00.00.G22").group_meaning


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("28.22.H17", "expected 4 dot-separated parts, found 3"),
        ("01.02.G22", "expected 4 dot-separated parts, found 3"),
        ("00.53.W00", "expected 4 dot-separated parts, found 3"),
        ("000.00.00.W01", "group letter 'W'"),
        ("000.00.00.G00", "group number 00"),
        ("000.00.00.H64", "numbers provinces 01–63"),
        ("000.00.00.h41", "group letter 'h'"),
        ("0000.00.00.H41", "LLL (level 4) must have 3 characters"),
        ("000.0a.00.H41", "KK (level 3) must be digits"),
        ("012.00.11.H53", "a higher level is set while a level below it is zero"),
        ("000.05.00.H53", "a higher level is set while a level below it is zero"),
        ("000.00.00.HAB", "group number must be two digits"),
        ("", "found 1"),
    ],
)
def test_malformed_codes_get_a_precise_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidAgencyCode) as caught:
        AgencyCode.parse(value)
    assert reason in caught.value.reason
    assert caught.value.code == "EDX-ID-FORMAT"
    assert not AgencyCode.is_valid(value)


def test_invalid_code_is_a_value_error_for_plain_callers() -> None:
    with pytest.raises(ValueError):
        AgencyCode.parse("28.22.H17")


_NEAR_CODES = st.text(alphabet="0123456789.ABCGHKLWh", min_size=9, max_size=14) | st.from_regex(
    r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}", fullmatch=True)


@settings(max_examples=1000, deadline=None)
@given(_NEAR_CODES)
def test_the_xsd_pattern_and_the_parser_agree(value: str) -> None:
    """The one format rule, two forms: AgencyCode.parse and the XSD pattern."""
    assert (re.fullmatch(XSD_PATTERN, value) is not None) == AgencyCode.is_valid(value)
