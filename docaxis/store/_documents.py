"""A clerk's view of the log (sổ văn bản): find documents, and each recipient's outcome.

A node's store keeps, for each package it logged, the events of every node that told it
something (its own, and the hop receipts of the nodes after it) and each recipient's
latest edXML status. This module turns those into what a clerk (văn thư) asks: *which
documents* (:class:`DocumentQuery`), and *what became of each copy*
(:class:`RecipientOutcome`) — delivered when and by which node, the recipient's latest
status, or refused where and why.

States of a document, most specific first (:attr:`DocumentSummary.state`):

``refused``
    a node refused it, a recipient could not be routed, or a recipient answered 02;
``in-transit``
    accepted here, not yet in every recipient's inbox;
``awaiting-receipt``
    in every recipient's inbox; some recipient has not registered it (no status 03–06);
``registered``
    every recipient has registered it (03, or a later step 04–06).

``delivered`` (a query's state) means ``awaiting-receipt`` or ``registered``; it is also
the state of a status package in its recipient's inbox (a status awaits no receipt).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from docaxis.directory import UnknownDestination

#: the country's time (the edXML receipts' own timestamps are written in it)
LOCAL_TIME = ZoneInfo("Asia/Ho_Chi_Minh")

#: kinds of a listed package: a document by its business type (BusinessDocType 0–3)
KINDS = ("document", "recall", "update", "replace", "status")
_KIND_OF_TYPE = {0: "document", 1: "recall", 2: "update", 3: "replace"}
#: a document kind's BusinessDocType (0 new, 1 recall, 2 update, 3 replace)
TYPE_OF_KIND = {kind: number for number, kind in _KIND_OF_TYPE.items()}

STATES = ("refused", "in-transit", "awaiting-receipt", "registered")
#: a query's states: ``delivered`` is either of the last two
QUERY_STATES = (*STATES, "delivered")

#: statuses that mean the recipient registered the document (tiếp nhận) or went further
REGISTERED = frozenset({"03", "04", "05", "06"})
#: the recipient refused to take the document
REFUSED_BY_RECIPIENT = "02"


class QueryError(ValueError):
    """A document query that cannot be run (an unknown kind or state, a bad range)."""


@dataclass(frozen=True)
class DocumentQuery:
    """Which documents to list; every filter given must hold.

    Parameters
    ----------
    number:
        Number and notation (số/ký hiệu) as the clerk types it, with or without
        diacritics (``12/VPCP-TTĐT`` = ``12/vpcp-ttdt``); a number alone (``12``) matches
        every notation.
    senders:
        Only documents from these agencies (the API: the caller's own).
    recipient:
        Only documents addressed to this agency.
    since, until:
        Received here at or after ``since``, before ``until``.
    kind:
        One of :data:`KINDS`.
    state:
        One of :data:`QUERY_STATES`.
    overdue_days:
        Only documents in some recipient's inbox for more than this many working days
        (Monday–Friday, local time) without its status 03.
    limit:
        At most this many, newest first.
    """

    number: str | None = None
    senders: tuple[str, ...] = ()
    recipient: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    kind: str | None = None
    state: str | None = None
    overdue_days: int | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise QueryError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.state is not None and self.state not in QUERY_STATES:
            raise QueryError(f"state {self.state!r} is not one of {', '.join(QUERY_STATES)}")
        if self.overdue_days is not None and self.overdue_days < 0:
            raise QueryError("overdue days cannot be negative")
        if self.since and self.until and self.since >= self.until:
            raise QueryError("the date range is empty (since is not before until)")
        if not 1 <= self.limit <= 10_000:
            raise QueryError("limit is between 1 and 10000")

    @property
    def business_doc_type(self) -> int | None:
        return TYPE_OF_KIND.get(self.kind or "")


@dataclass(frozen=True)
class RecipientOutcome:
    """What became of one recipient's copy, as this node knows it."""

    agency: str
    #: ``delivered``, ``in-transit``, ``refused`` (by a node or by the recipient's 02),
    #: ``unroutable``
    state: str
    delivered_at: dt.datetime | None = None
    #: the node whose inbox holds it
    delivered_by: str | None = None
    status_code: str | None = None
    status_at: dt.datetime | None = None
    #: the node that refused the package (or the recipient agency, for a 02)
    refused_by: str | None = None
    refused_at: dt.datetime | None = None
    #: why: ``{"code": …, "message": …}`` each
    reasons: tuple[Mapping[str, Any], ...] = ()

    @property
    def registered(self) -> bool:
        return self.status_code in REGISTERED

    def to_dict(self) -> dict[str, Any]:
        return {"agency": self.agency, "state": self.state,
                "delivered_at": _iso(self.delivered_at), "delivered_by": self.delivered_by,
                "status_code": self.status_code, "status_at": _iso(self.status_at),
                "refused_by": self.refused_by, "refused_at": _iso(self.refused_at),
                "reasons": [dict(r) for r in self.reasons]}


@dataclass(frozen=True)
class DocumentSummary:
    """One package logged here, as a clerk lists it."""

    sha256: str
    document_id: str | None
    sender: str | None
    kind: str
    received_at: dt.datetime
    code: str | None = None
    subject: str | None = None
    #: for a status package: its code and the sender of the document it answers
    status_code: str | None = None
    outcomes: tuple[RecipientOutcome, ...] = field(default=())

    @property
    def state(self) -> str:
        states = {outcome.state for outcome in self.outcomes}
        if self.kind == "status":  # a status awaits no receipt of its own
            return "refused" if states - {"delivered", "in-transit"} else (
                "delivered" if states == {"delivered"} else "in-transit")
        if states & {"refused", "unroutable"}:
            return "refused"
        if not self.outcomes or states != {"delivered"}:
            return "in-transit"
        if all(outcome.registered for outcome in self.outcomes):
            return "registered"
        return "awaiting-receipt"

    def overdue(self, days: int, now: dt.datetime) -> bool:
        """Whether some recipient has held it more than ``days`` working days without
        registering it."""
        return self.kind != "status" and any(
                   outcome.state == "delivered" and not outcome.registered
                   and outcome.delivered_at is not None
                   and working_days_between(outcome.delivered_at, now) > days
                   for outcome in self.outcomes)

    def matches_state(self, state: str) -> bool:
        if state == "delivered":
            return self.state in ("awaiting-receipt", "registered", "delivered")
        return self.state == state

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "document_id": self.document_id,
                "sender": self.sender, "kind": self.kind, "code": self.code,
                "subject": self.subject, "status_code": self.status_code,
                "received_at": _iso(self.received_at), "state": self.state,
                "recipients": [outcome.to_dict() for outcome in self.outcomes]}


def kind_of(package_kind: str, business_doc_type: int) -> str:
    """A listed package's kind (:data:`KINDS`) from its log row."""
    if package_kind == "status":
        return "status"
    return _KIND_OF_TYPE.get(business_doc_type, "document")


class _Happening(Protocol):
    """An event as the outcome rules read it (the store's ``Event``)."""

    @property
    def node(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def at(self) -> dt.datetime: ...
    @property
    def agency(self) -> str | None: ...
    @property
    def detail(self) -> str | None: ...


def outcomes(recipients: Sequence[str], events: Iterable[_Happening],
             statuses: Mapping[str, tuple[str, dt.datetime]]) -> tuple[RecipientOutcome, ...]:
    """Each recipient's outcome from a package's events (this node's and the hop receipts
    of the nodes after it, any order) and the recipients' latest statuses.

    A refusal by a node (``hop:rejected``: the package as a whole) is every recipient's
    outcome that was not delivered before it; an unroutable recipient is that recipient's.
    """
    delivered: dict[str, tuple[dt.datetime, str]] = {}
    unroutable: dict[str, tuple[dt.datetime, str, str | None]] = {}
    refusal: tuple[dt.datetime, str, tuple[Mapping[str, Any], ...]] | None = None
    for event in sorted(events, key=lambda e: e.at):
        if event.kind in ("delivered", "hop:delivered") and event.agency:
            delivered.setdefault(event.agency, (event.at, event.node))
        elif event.kind in ("unroutable", "hop:unroutable") and event.agency:
            unroutable.setdefault(event.agency, (event.at, event.node, event.detail))
        elif event.kind in ("hop:rejected", "refused-by-axis") and refusal is None:
            refusal = (event.at, event.node, _reasons(event.detail))
    result = []
    for agency in recipients:
        code, status_at = statuses.get(agency, (None, None))
        if agency in delivered:
            at, node = delivered[agency]
            if code == REFUSED_BY_RECIPIENT:
                result.append(RecipientOutcome(
                    agency, "refused", at, node, code, status_at, refused_by=agency,
                    refused_at=status_at, reasons=({"code": "STATUS-02",
                                                    "message": "the recipient refused it"},)))
            else:
                result.append(RecipientOutcome(agency, "delivered", at, node, code, status_at))
        elif agency in unroutable:
            at, node, detail = unroutable[agency]
            result.append(RecipientOutcome(
                agency, "unroutable", refused_by=node, refused_at=at,
                reasons=({"code": UnknownDestination.default_code, "message": detail or ""},)))
        elif refusal is not None:
            at, node, reasons = refusal
            result.append(RecipientOutcome(agency, "refused", refused_by=node, refused_at=at,
                                           reasons=reasons))
        else:
            result.append(RecipientOutcome(agency, "in-transit", status_code=code,
                                           status_at=status_at))
    return tuple(result)


def _reasons(detail: str | None) -> tuple[Mapping[str, Any], ...]:
    """A refusal's reasons from its event detail (JSON, as the refusing node sent them)."""
    try:
        parsed = json.loads(detail or "[]")
    except ValueError:
        return ({"code": "RELAY-REFUSED", "message": detail or ""},)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return ({"code": "RELAY-REFUSED", "message": str(parsed)},)
    return tuple({"code": str(r.get("code", "RELAY-REFUSED")),
                  "message": str(r.get("message", ""))} if isinstance(r, dict)
                 else {"code": "RELAY-REFUSED", "message": str(r)} for r in parsed)


def working_days_between(start: dt.datetime, end: dt.datetime) -> int:
    """Working days (Monday–Friday, local dates) after ``start``'s day up to ``end``'s.

    Public holidays are not known to docaxis: a document delivered before Tết counts
    the holiday's weekdays.

    Examples
    --------
    >>> friday = dt.datetime(2026, 11, 27, 9, tzinfo=LOCAL_TIME)
    >>> working_days_between(friday, friday + dt.timedelta(days=3))  # to Monday
    1
    """
    first, last = start.astimezone(LOCAL_TIME).date(), end.astimezone(LOCAL_TIME).date()
    days = 0
    day = first + dt.timedelta(days=1)
    while day <= last:
        days += day.weekday() < 5
        day += dt.timedelta(days=1)
    return days


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
