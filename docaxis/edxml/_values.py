"""Leaf values: the one place that says how element text becomes a typed value.

:func:`convert` is used by the readers (which keep only the value) and by the validator
(which reports the problems), so reading and validating can never disagree.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, NamedTuple

from docaxis.edxml._findings import Severity
from docaxis.edxml._spec import Field
from docaxis.identifiers import AgencyCode, InvalidAgencyCode


class Problem(NamedTuple):
    code: str
    severity: Severity
    message: str


NO_PROBLEMS: Final[tuple[Problem, ...]] = ()
#: integer fields of the standard are small codes and counts; more digits are refused
#: before conversion (Python refuses over 4,300 and converts long ones in quadratic time)
MAX_INT_DIGITS: Final = 18
_BOOLEANS: Final = {"true": True, "false": False, "1": True, "0": False}

#: Agency code → why it is invalid (``None`` when valid); codes repeat a lot in traffic.
_agency_problems: dict[str, str | None] = {}


def agency_problem(text: str) -> str | None:
    """Why ``text`` is not an agency code, or ``None`` (memoised)."""
    try:
        return _agency_problems[text]
    except KeyError:
        pass
    try:
        AgencyCode.parse(text)
        problem = None
    except InvalidAgencyCode as exc:
        problem = exc.message
    if len(_agency_problems) > 50_000:
        _agency_problems.clear()
    _agency_problems[text] = problem
    return problem


def convert(f: Field, text: str) -> tuple[object, tuple[Problem, ...]]:
    """Typed value of stripped, non-empty ``text`` for field ``f``, and its problems.

    The value is ``None`` when the text cannot be read as the field's kind. Agency codes
    and status codes keep their text even when invalid, so a report can quote them.
    """
    kind = f.kind
    if kind == "text" or kind == "base64":
        if f.max_length is not None and len(text) > f.max_length:
            return text, (Problem("EDX-LENGTH", Severity.WARNING,
                                  f"{f.tag} has {len(text)} characters, the limit is "
                                  f"{f.max_length}"),)
        return text, NO_PROBLEMS
    if kind == "agency":
        problem = agency_problem(text)
        if problem is None:
            return text, NO_PROBLEMS
        return text, (Problem("EDX-ID-FORMAT", Severity.ERROR, problem),)
    if kind == "int":
        return _int(f, text)
    if kind == "date":
        return _date(f, text)
    if kind == "datetime":
        return _datetime(f, text)
    if kind == "status":
        if f.values is not None and text not in f.values:
            known = ", ".join(sorted(f.values))  # type: ignore[arg-type]
            return text, (Problem("EDX-STATUS-CODE", Severity.ERROR,
                                  f"status code {text!r} is not one of {known}"),)
        return text, NO_PROBLEMS
    if kind == "bool":
        value = _BOOLEANS.get(text.lower())
        if value is None:
            return None, (Problem("EDX-VALUE", Severity.ERROR,
                                  f"{f.tag} must be true/false/1/0, found {text!r}"),)
        return value, NO_PROBLEMS
    raise AssertionError(kind)  # pragma: no cover - the spec only uses known kinds


def _int(f: Field, text: str) -> tuple[int | None, tuple[Problem, ...]]:
    body = text[1:] if text[:1] in "+-" else text
    if not (body.isascii() and body.isdigit()):
        return None, (Problem("EDX-VALUE", Severity.ERROR,
                              f"{f.tag} must be an integer, found {text[:40]!r}"),)
    if len(body) > MAX_INT_DIGITS:
        return None, (Problem("EDX-VALUE", Severity.ERROR,
                              f"{f.tag} has {len(body)} digits, at most {MAX_INT_DIGITS} are "
                              "accepted"),)
    value = int(text)
    if f.values is not None and value not in f.values:
        allowed = ", ".join(str(v) for v in sorted(f.values))  # type: ignore[type-var]
        return value, (Problem("EDX-CODE-UNKNOWN", Severity.ERROR,
                               f"{f.tag} {value} is not one of {allowed}"),)
    if f.min_value is not None and value < f.min_value:
        return value, (Problem("EDX-VALUE", Severity.ERROR,
                               f"{f.tag} must be at least {f.min_value}, found {value}"),)
    return value, NO_PROBLEMS


def _date(f: Field, text: str) -> tuple[dt.date | None, tuple[Problem, ...]]:
    legacy = False
    if not text.isascii():  # int() would read other scripts' digits (٢٠٢٤)
        return None, (Problem("EDX-DATE-FORMAT", Severity.ERROR,
                              f"{f.tag} {text[:40]!r} is not a date in the form yyyy/MM/dd"),)
    if len(text) == 10 and text[4] == "/" and text[7] == "/":
        year, month, day = text[:4], text[5:7], text[8:]
    elif len(text) == 10 and text[2] == "/" and text[5] == "/":
        legacy = True
        year, month, day = text[6:], text[3:5], text[:2]
    else:
        return None, (Problem("EDX-DATE-FORMAT", Severity.ERROR,
                              f"{f.tag} {text!r} is not a date in the form yyyy/MM/dd"),)
    try:
        value = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None, (Problem("EDX-DATE-FORMAT", Severity.ERROR,
                              f"{f.tag} {text!r} is not a real date"),)
    if legacy:
        return value, (Problem("EDX-DATE-FORMAT-LEGACY", Severity.WARNING,
                               f"{f.tag} {text!r} uses dd/MM/yyyy; the standard form is "
                               f"{value:%Y/%m/%d}"),)
    return value, NO_PROBLEMS


def _datetime(f: Field, text: str) -> tuple[dt.datetime | None, tuple[Problem, ...]]:
    date_part, _, time_part = text.partition(" ")
    bad = (Problem("EDX-DATE-FORMAT", Severity.ERROR,
                   f"{f.tag} {text!r} is not a timestamp yyyy/MM/dd HH:mm:ss"),)
    if not time_part:
        return None, bad
    date, problems = _date(f, date_part)
    if date is None:
        return None, bad
    try:
        clock = dt.time.fromisoformat(time_part.strip())
    except ValueError:
        return None, bad
    return dt.datetime.combine(date, clock.replace(microsecond=0, tzinfo=None)), problems
