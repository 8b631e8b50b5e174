"""A document's story as a clerk reads it: one outcome line per recipient, then the
timeline in local time, Vietnamese by default (``--lang en``), at 80 columns.

Only wording lives here; what happened to each copy is decided by the store
(:class:`docaxis.store.RecipientOutcome`)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from typing import Any

from rich.markup import escape

from docaxis.cli._main import stdout
from docaxis.edxml import BUSINESS_DOC_TYPES, STATUS_CODES
from docaxis.store import (
    LOCAL_TIME,
    TYPE_OF_KIND,
    DocumentSummary,
    RecipientOutcome,
    Trace,
)

#: the trace's JSON schema (docs/clerks.md); bumped when a field changes meaning
TRACE_SCHEMA = "docaxis.trace/1"

#: event kinds in the clerk's words: (Vietnamese, English)
EVENT_LABELS: dict[str, tuple[str, str]] = {
    "received": ("Tiếp nhận, đã kiểm tra chữ ký", "Received, signature checked"),
    "routed": ("Chuyển tiếp", "Passed on"),
    "handed_over": ("Đã bàn giao cho nút kế tiếp", "Handed over to the next node"),
    "delivered": ("Đã đến hộp thư đơn vị nhận", "In the recipient's inbox"),
    "unroutable": ("Không tìm được đường đến đơn vị nhận", "No route to the recipient"),
    "acknowledged": ("Đơn vị nhận đã lấy về", "Picked up by the recipient"),
    "status": ("Nhận trạng thái", "Status received"),
    "rejection_notice": ("Đã báo từ chối cho đơn vị gửi", "The sender was told of a refusal"),
    "refusal_status": ("Đơn vị gửi nhận trạng thái 02 do nút từ chối ký",
                       "The sender got a status 02 signed by the refusing node"),
    "recall": ("Yêu cầu thu hồi", "Recall requested"),
    "update": ("Yêu cầu cập nhật", "Update requested"),
    "replace": ("Yêu cầu thay thế", "Replacement requested"),
    "taken-by-axis": ("Trục quốc gia đã nhận", "Taken by the national axis"),
    "refused-by-axis": ("Trục quốc gia từ chối", "Refused by the national axis"),
    "refused-from-axis": ("Từ chối gói tin từ trục quốc gia",
                          "Refused a package from the national axis"),
    "hop:received": ("Nút sau đã nhận và kiểm tra", "Received and checked by a later node"),
    "hop:routed": ("Nút sau chuyển tiếp", "Passed on by a later node"),
    "hop:delivered": ("Đã đến hộp thư đơn vị nhận", "In the recipient's inbox"),
    "hop:unroutable": ("Nút sau không tìm được đường", "No route at a later node"),
    "hop:rejected": ("Nút sau từ chối", "Refused by a later node"),
}

_WORDS = {
    "vi": {"delivered": "đã đến hộp thư tại nút {node} lúc {at}",
           "in-transit": "đang chuyển, chưa đến hộp thư",
           "refused": "bị từ chối tại {node} lúc {at}",
           "refused-by-recipient": "đơn vị nhận từ chối tiếp nhận (02) lúc {at}",
           "unroutable": "không tìm được đường đến đơn vị nhận tại nút {node} lúc {at}",
           "status": "trạng thái mới nhất: {code} {label} ({at})",
           "no-status": "chưa có trạng thái",
           "outcome": "Kết quả", "timeline": "Diễn biến",
           "document": "Văn bản", "time": "giờ Việt Nam, UTC+7", "utc": "giờ UTC"},
    "en": {"delivered": "in its inbox at node {node}, {at}",
           "in-transit": "in transit, not yet in its inbox",
           "refused": "refused at {node}, {at}",
           "refused-by-recipient": "the recipient refused it (02), {at}",
           "unroutable": "no route to the recipient at node {node}, {at}",
           "status": "latest status: {code} {label} ({at})",
           "no-status": "no status yet",
           "outcome": "Outcome", "timeline": "Timeline",
           "document": "Document", "time": "Vietnam time, UTC+7", "utc": "UTC"},
}


def when(at: dt.datetime | None, lang: str, utc: bool) -> str:
    """A date and time as a clerk reads it: local (Asia/Ho_Chi_Minh) unless ``utc``."""
    if at is None:
        return "—"
    at = at.astimezone(dt.UTC if utc else LOCAL_TIME)
    text = at.strftime("%H:%M:%S %d/%m/%Y" if lang == "vi" else "%Y-%m-%d %H:%M:%S")
    return f"{text}Z" if utc else text


def reason_text(reasons: Any) -> str:
    """Refusal reasons as sentences, each with its stable code."""
    parts = []
    for reason in reasons:
        if isinstance(reason, Mapping):
            message = str(reason.get("message") or "").strip().rstrip(".")
            code = reason.get("code")
            parts.append(f"{message} [{code}]" if code else message)
        else:
            parts.append(str(reason))
    return "; ".join(p for p in parts if p) + ("." if parts else "")


def outcome_line(outcome: RecipientOutcome, names: Mapping[str, str], lang: str,
                 utc: bool) -> str:
    """One recipient's outcome as a sentence."""
    words = _WORDS[lang]
    who = outcome.agency + (f" ({names[outcome.agency]})" if outcome.agency in names else "")
    if outcome.state == "delivered":
        text = words["delivered"].format(node=outcome.delivered_by,
                                         at=when(outcome.delivered_at, lang, utc))
    elif outcome.state == "refused" and outcome.refused_by == outcome.agency:
        text = words["refused-by-recipient"].format(at=when(outcome.refused_at, lang, utc))
    elif outcome.state in ("refused", "unroutable"):
        text = words[outcome.state].format(node=outcome.refused_by,
                                           at=when(outcome.refused_at, lang, utc))
        text += ": " + reason_text(outcome.reasons)
    else:
        text = words["in-transit"]
    if outcome.state != "unroutable":
        if outcome.status_code:
            label = STATUS_CODES.get(outcome.status_code)
            text += "; " + words["status"].format(
                code=outcome.status_code,
                label=(label.vi if lang == "vi" else label.en) if label else "?",
                at=when(outcome.status_at, lang, utc))
        elif outcome.state == "delivered":
            text += "; " + words["no-status"]
    return f"{who}: {text}"


def event_detail(kind: str, detail: str | None) -> str:
    """An event's detail; a refusal's JSON reasons become sentences."""
    if kind == "hop:rejected" and detail:
        try:
            return reason_text(json.loads(detail))
        except ValueError:
            return detail
    return detail or ""


def print_story(trace: Trace, summary: DocumentSummary | None, *, names: Mapping[str, str],
                lang: str = "vi", utc: bool = False) -> None:
    """Outcome lines first, then the timeline; lines wrap at the terminal's width (words
    kept whole, a DocumentId folded), nothing is cut."""
    words = _WORDS[lang]
    say = functools.partial(stdout.print, soft_wrap=False, overflow="fold")
    heading = f"{words['document']} {trace.document_id}"
    if summary is not None:
        kind = BUSINESS_DOC_TYPES.get(TYPE_OF_KIND.get(summary.kind, 0))
        details = [summary.code or "", summary.sender or "",
                   (kind.vi if lang == "vi" else kind.en) if kind else ""]
        heading += " — " + ", ".join(d for d in details if d)
    say(f"[bold]{escape(heading)}[/]")
    if summary is not None and summary.subject:
        say(escape(summary.subject))
    if summary is not None and summary.outcomes:
        say(f"\n[bold]{words['outcome']}[/]")
        for outcome in summary.outcomes:
            style = {"delivered": "green", "in-transit": "yellow"}.get(outcome.state, "red")
            say(f"[{style}]•[/] " + escape(outcome_line(outcome, names, lang, utc)))
    say(f"\n[bold]{words['timeline']}[/] ({words['utc' if utc else 'time']})")
    for event in trace.events:
        label = EVENT_LABELS.get(event.kind)
        name = (label[0] if lang == "vi" else label[1]) if label else event.kind
        agency = f" — {event.agency}" if event.agency else ""
        say(f"{when(event.at, lang, utc)}  {escape(event.node)}: {escape(name)}"
            f"{escape(agency)}")
        detail = event_detail(event.kind, event.detail)
        if detail:
            say(f"    {escape(detail)}", style="dim")


def trace_json(trace: Trace, summary: DocumentSummary | None) -> dict[str, Any]:
    """The trace's stable JSON form (schema :data:`TRACE_SCHEMA`, docs/clerks.md)."""
    return {"schema": TRACE_SCHEMA, **trace.to_dict(),
            "document": summary.to_dict() if summary is not None else None}
