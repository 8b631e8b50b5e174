"""The agency-facing HTTP API of a node (FastAPI).

Every call carries ``Authorization: Bearer <token>``; a token is bound to the agencies
its document system acts for (codes and/or whole subtrees of the directory). It posts
only as one of them (From) and reads only their inboxes and the traces of their
documents (403 otherwise). Errors are JSON with the stable codes of
the validator and the verifier. The OpenAPI description is at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from docaxis import __version__
from docaxis.api._body import SPOOL_ABOVE, BadLength, BodyTooLarge, receive_body
from docaxis.api._vxp import VxpEndpoint
from docaxis.edxml import ParseError, parse, parse_file
from docaxis.relay import Rejection, RelayNode
from docaxis.store import (
    LOCAL_TIME,
    UNAVAILABLE,
    AgencyBinding,
    DocumentQuery,
    QueryError,
    SystemRegistry,
)

_log = logging.getLogger("docaxis.api")

XML = "application/xml"


def _error(status: int, code: str, message: str,
           reasons: list[dict[str, Any]] | None = None, *,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "message": message,
                                                     "reasons": reasons or []},
                        headers=headers)


#: seconds a client is asked to wait when the store is down (HTTP 503)
RETRY_AFTER = 5


class _Outage:
    """Logs a store outage seen by the API once when it starts and once when it ends
    (not once per request: a busy node would write thousands of lines a minute)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.since: float | None = None

    def seen(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            _log.error("api.store_unavailable", extra={
                "code": "API-UNAVAILABLE", "node": self.node, "error": repr(error)[:300]})

    def over(self) -> None:
        if self.since is not None:
            _log.warning("api.store_available", extra={
                "code": "API-AVAILABLE", "node": self.node,
                "down_seconds": round(time.monotonic() - self.since, 1)})
            self.since = None


#: refusals that are about who may do what (403), not about the package (422)
_FORBIDDEN = frozenset({"RELAY-NOT-SENDER", "RELAY-NOT-RECIPIENT", "RELAY-NOT-ORIGINAL-SENDER"})

#: inbox ids are database integers: anything outside answers "not found", never a 500
_MAX_ID = 2**31 - 1


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` with Swagger UI served from the installed package, not a CDN (a node is
    often on a closed network)."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} — API",
                                   swagger_js_url="/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/static/swagger-ui.css",
                                   swagger_favicon_url="/docs/static/favicon-32x32.png")


def readiness(node: RelayNode) -> dict[str, dict[str, Any]]:
    """What ``/ready`` reports: each part the node needs, usable or not, and why."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        node.store.ping()
        checks["store"] = {"ok": node.store_available, "detail": "database and disk usable"
                           if node.store_available else "the node is waiting for its store"}
    except UNAVAILABLE as exc:
        checks["store"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    connected = node.links(node.node_id).connected
    checks["broker"] = {"ok": connected, "detail": "connected" if connected else
                        "not connected (reconnecting)"}
    trust = node.verifier.policy.trust
    now = dt.datetime.now(dt.UTC)
    stale = [crl.issuer.rfc4514_string() for crl in trust.crls
             if crl.next_update_utc is not None
             and crl.next_update_utc + trust.crl_grace < now]
    usable = bool(trust.anchors) and bool(trust.crls) and not stale
    detail = (f"{len(trust.anchors)} anchor(s), {len(trust.crls)} CRL(s)" if usable else
              "no trust anchor" if not trust.anchors else "no CRL" if not trust.crls else
              f"stale CRL(s): {', '.join(stale)}")
    checks["trust"] = {"ok": usable, "detail": detail}
    return checks


class Problem(BaseModel):
    """Every error the API answers: a stable code, a sentence, and the reasons."""

    error: str = Field(description="stable code (standards/README.md)")
    message: str
    reasons: list[dict[str, Any]] = Field(default_factory=list)


class Accepted(BaseModel):
    """A package accepted (202): durable at this node; a repeat gets the same answer."""

    sha256: str
    business_key: str
    accepted_at: str
    duplicate: bool
    node: str


class InboxEntry(BaseModel):
    id: int
    sha256: str
    document_id: str | None
    kind: str
    state: str
    received_at: str


def _http_error(exc: StarletteHTTPException) -> JSONResponse:
    """An ``HTTPException`` as a :class:`Problem` (its headers kept: WWW-Authenticate …)."""
    detail: Any = exc.detail  # our routes raise (code, message) tuples
    if isinstance(detail, tuple):
        code, message = detail
    else:  # the router's own 404 / 405
        code, message = f"API-HTTP-{exc.status_code}", str(detail)
    response = _error(exc.status_code, code, message)
    for name, value in (exc.headers or {}).items():  # WWW-Authenticate, Allow …
        response.headers[name] = value
    return response


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each a :class:`Problem`."""
    said = {400: "bad request", 401: "no, unknown or revoked Bearer token",
            403: "acting for another agency", 404: "not found (or not yours)",
            413: "body over the node's package size limit",
            415: "not an XML body", 416: "the Range asked for is not within the package",
            422: "refused: the reasons carry the stable codes",
            503: "the node's store is unavailable; retry after Retry-After seconds"}
    return {status: {"model": Problem, "description": said[status]} for status in statuses}


_XML_BODY: dict[str, Any] = {"requestBody": {"required": True, "description": "the signed "
                                             "edXML package, exact bytes", "content": {
    "application/xml": {"schema": {"type": "string", "format": "binary"}}}}}
#: media types a package may be posted as (none at all is accepted too)
_XML_TYPES = frozenset({"application/xml", "text/xml", "application/octet-stream"})

bearer = HTTPBearer(auto_error=False, description="the agency system's API token")


class _TokenCache:
    """Which agencies a token acts for, remembered for ``ttl`` seconds: one database query
    per token and interval instead of one per request. A revocation (``docaxis token
    --revoke``, another process) therefore takes effect within ``ttl`` seconds."""

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._known: dict[str, tuple[AgencyBinding | None, float]] = {}

    async def binding_for(self, node: RelayNode, token: str) -> AgencyBinding | None:
        """The token's binding (None: unknown or revoked); the store is asked, in a worker
        thread, only when this token was not seen in the last ``ttl`` seconds."""
        now = time.monotonic()
        known = self._known.get(token)
        if known is not None and now - known[1] < self.ttl:
            return known[0]
        binding = await asyncio.to_thread(node.store.binding_for_token, token)
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[token] = (binding, now)
        return binding


async def authenticate(authorization: str | None, node: RelayNode,
                       tokens: _TokenCache) -> AgencyBinding:
    """The agencies whose Bearer token an ``Authorization`` header carries.

    Raises
    ------
    HTTPException
        401 (``API-UNAUTHENTICATED``, with ``WWW-Authenticate: Bearer``): no Bearer token,
        or one that is unknown or revoked.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, ("API-UNAUTHENTICATED", "a Bearer token is required"),
                            headers={"WWW-Authenticate": "Bearer"})
    binding = await tokens.binding_for(node, token.strip())
    if binding is None:
        raise HTTPException(401, ("API-UNAUTHENTICATED", "unknown or revoked token"),
                            headers={"WWW-Authenticate": "Bearer"})
    return binding


async def caller(request: Request,
                 _credentials: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(bearer)] = None) -> AgencyBinding:
    """The agencies a request's Bearer token acts for (401 otherwise); ``bearer`` is
    declared so that the OpenAPI description names the security scheme.

    A coroutine: FastAPI would run a plain function in its thread pool, a thread hop per
    request for what is, nearly always, a dictionary lookup."""
    return await authenticate(request.headers.get("authorization"), request.app.state.node,
                              request.app.state.tokens)


Caller = Annotated[AgencyBinding, Depends(caller)]

class _Mount:
    """Hands the requests under the VXP prefix to the VXP endpoint (its own protocol:
    always 200, its envelope, no FastAPI error shapes)."""

    def __init__(self, app: ASGIApp, endpoint: VxpEndpoint) -> None:
        self.app, self.endpoint = app, endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.endpoint.serves(scope["path"]):
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


#: the routes :class:`_LanedApp`'s lane serves, and the kind of package each takes
_LANE_ROUTES = {"/v1/packages": "document", "/v1/status": "status"}


class _LanedApp(FastAPI):
    """FastAPI with a lane in front of all of it: ``POST /v1/packages`` and
    ``POST /v1/status`` (the hot path: every package an agency sends) are served by
    :attr:`lane` straight from the ASGI scope, ahead of FastAPI's own per-request work (its
    telemetry check), Starlette's error middleware, the VXP mount, the router, dependency
    resolution and per-route wrappers.

    Measured with ``python -m benchmarks relay``: the router's machinery cost ≈ 0.35 ms of
    CPU per request — a quarter of what accepting a package costs in all — on the one
    core a worker has; the layers in front of the router, a further ≈ 5 % (tenth
    session, adjacent A/B of the ingress alone, two workers, 16 requests in flight, eight
    rounds: +5 % packages per second, −5 % CPU per package). The lane calls the very
    functions the declared routes use (the Bearer check, :func:`create_app`'s ``accept``,
    the Problem shapes of the exception handlers), so both answer alike; the routes stay
    declared for the OpenAPI description and for any request the lane does not take.
    ``lane = None`` takes it out: every request then goes the declared way.
    """

    lane: Callable[[Request, str], Awaitable[Response]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane
        kind = (_LANE_ROUTES.get(scope["path"])
                if scope["type"] == "http" and scope["method"] == "POST" else None)
        if lane is None or kind is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        response = await lane(Request(scope, receive), kind)
        await response(scope, receive, send)


def create_app(node: RelayNode, *, systems: SystemRegistry | None = None,
               vxp_prefix: str = "/vxp") -> FastAPI:
    """The API of ``node`` (its store holds the agency credentials); with ``systems``
    (document systems' credentials) also the VXP endpoint under ``vxp_prefix``."""
    app = _LanedApp(title=f"docaxis node {node.node_id}", version=__version__,
                    description="Post signed edXML packages, pick up your inbox, post "
                                "status receipts, trace your documents. Every error is a "
                                "Problem (`error`, `message`, `reasons`) with a stable "
                                "code.",
                    docs_url=None, redoc_url=None)
    app.state.node = node
    app.state.tokens = _TokenCache()
    _offline_docs(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _http_error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = [{"where": ".".join(str(p) for p in error.get("loc", ())),
                    "message": error.get("msg", "")} for error in exc.errors()]
        return _error(422, "API-INVALID-REQUEST", "the request's parameters are not valid",
                      reasons)

    outage = _Outage(node.node_id)

    def unavailable(exc: Exception) -> JSONResponse:
        outage.seen(exc)
        response = _error(503, "API-UNAVAILABLE", "the node's store (database or disk) is "
                          "unavailable; nothing was accepted — retry later")
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response

    for outage_error in UNAVAILABLE:
        @app.exception_handler(outage_error)
        async def store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
            return unavailable(exc)


    def own(binding: AgencyBinding, code: str) -> None:
        if not binding.covers(code, node.directory):
            raise HTTPException(403, ("API-FORBIDDEN",
                                      f"this credential does not act for agency {code}"))

    async def accept(request: Request, binding: AgencyBinding, expect: str) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media and media not in _XML_TYPES:
            return _error(415, "API-MEDIA-TYPE", f"post the package as application/xml, "
                                                 f"not {media[:80]}")
        try:
            body = await receive_body(request, node.limits.max_bytes, node.spool)
        except BodyTooLarge as exc:
            return _error(413, "API-TOO-LARGE", str(exc))
        except BadLength as exc:
            return _error(400, "API-BAD-LENGTH", str(exc))
        try:  # a large upload is spooled: read by streaming, its attachments left in the file
            return await checked(body, binding, expect)
        finally:
            if isinstance(body, Path):  # kept by the store if accepted (moved, not copied)
                body.unlink(missing_ok=True)

    async def checked(body: bytes | Path, binding: AgencyBinding, expect: str) -> Response:
        try:  # parsed once: the node checks this tree
            parsed = (parse(body, limits=node.limits.in_memory()) if isinstance(body, bytes) else
                      await asyncio.to_thread(parse_file, body, limits=dataclasses.replace(
                          node.limits, stream_above=0)))
        except ParseError as exc:
            return _error(422, exc.code, exc.message, [{"line": exc.line, "column": exc.column}])
        if parsed.kind != expect:
            return _error(422, "API-WRONG-KIND", f"this endpoint takes {expect} packages, "
                                                 f"not {parsed.kind} packages")
        sender = parsed.package.sender or ""
        # the sender the credential may post as: the package's From, if it acts for it
        # (else its first agency: the pipeline refuses with RELAY-NOT-SENDER, naming both)
        agency = sender if binding.covers(sender, node.directory) else (
            binding.agencies[0] if binding.agencies else "-")
        try:
            # checked on the loop or in a thread, committed with the submissions that
            # arrive with it
            acceptance = await node.submit_async(parsed, agency=agency)
        except Rejection as exc:
            status = 403 if exc.code in _FORBIDDEN else 422
            return _error(status, exc.code, exc.message, exc.reasons)
        outage.over()
        return JSONResponse(status_code=202, content={
            "sha256": acceptance.sha256, "business_key": acceptance.business_key,
            "accepted_at": acceptance.accepted_at.isoformat(),
            "duplicate": acceptance.duplicate, "node": node.node_id})

    @app.get("/health", summary="Alive: the process answers", tags=["operations"])
    async def health() -> dict[str, str | int]:
        # which process answered: a node of several workers answers from any of them
        return {"status": "alive", "node": node.node_id, "process": os.getpid()}

    @app.get("/ready", summary="Ready: store, broker and trust material usable",
             tags=["operations"], responses={503: {"description": "not ready: which part "
                                                   "is not usable, and why"}})
    def ready() -> JSONResponse:
        checks = readiness(node)
        ok = all(check["ok"] for check in checks.values())
        return JSONResponse(status_code=200 if ok else 503,
                            content={"status": "ready" if ok else "not ready",
                                     "node": node.node_id, "checks": checks})

    @app.get("/metrics", summary="Prometheus metrics", tags=["operations"],
             response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(node.metrics.exposed), media_type=CONTENT_TYPE_LATEST)

    async def post(request: Request, expect: str) -> Response:
        """``POST /v1/packages`` (``expect`` "document") or ``/v1/status`` ("status") as
        the lane serves them (:class:`_LanedApp`): the routes' dependency, handler and
        exception handlers, called directly."""
        try:
            binding = await authenticate(request.headers.get("authorization"), node,
                                         app.state.tokens)
            return await accept(request, binding, expect)
        except StarletteHTTPException as exc:
            return _http_error(exc)
        except UNAVAILABLE as exc:
            return unavailable(exc)

    app.lane = post
    if systems is not None:
        app.add_middleware(_Mount, endpoint=VxpEndpoint(node, systems, vxp_prefix))

    @app.post("/v1/packages", status_code=202, summary="Post a signed document package",
              response_model=Accepted, openapi_extra=_XML_BODY,
              responses=_problems(400, 401, 403, 413, 415, 422, 503))
    async def post_package(request: Request, agency: Caller) -> Response:
        return await accept(request, agency, "document")

    @app.post("/v1/status", status_code=202, summary="Post a signed status package (receipt)",
              response_model=Accepted, openapi_extra=_XML_BODY,
              responses=_problems(400, 401, 403, 413, 415, 422, 503))
    async def post_status(request: Request, agency: Caller) -> Response:
        return await accept(request, agency, "status")

    # endpoints that only touch the store are plain functions: FastAPI runs them in its
    # thread pool, so the node's event loop never waits on the database
    @app.get("/v1/agencies/{code}/inbox", summary="List an agency's inbox",
             responses=_problems(401, 403, 422, 503))
    def inbox(code: str, agency: Caller, all: bool = False) -> list[InboxEntry]:
        own(agency, code)
        return [InboxEntry(id=i.id, sha256=i.sha256, document_id=i.document_id, kind=i.kind,
                           state=i.state, received_at=i.created_at.isoformat())
                for i in node.store.inbox(code, include_acknowledged=all)]

    @app.get("/v1/agencies/{code}/inbox/{item_id}", summary="Fetch a package (exact bytes)",
             response_class=Response, responses={
                 200: {"description": "the package's exact bytes (a rejection notice: JSON)",
                       "content": {"application/xml": {"schema": {"type": "string",
                                                                  "format": "binary"}},
                                   "application/json": {}}},
                 206: {"description": "the bytes a Range header asked for (a broken download "
                              "resumes)", "content": {"application/xml": {"schema": {
                                  "type": "string", "format": "binary"}}}},
                 **_problems(401, 403, 404, 416, 422, 503)})
    def fetch(code: str, item_id: int, agency: Caller, request: Request) -> Response:
        own(agency, code)
        item = node.store.inbox_item(code, item_id) if 0 < item_id <= _MAX_ID else None
        if item is None:
            raise HTTPException(404, ("API-NOT-FOUND", f"no inbox item {item_id}"))
        media = "application/json" if item.kind == "rejection" else XML
        headers = {"X-Docaxis-SHA256": item.sha256, "X-Docaxis-Kind": item.kind,
                   "Accept-Ranges": "bytes"}
        wanted = request.headers.get("range")
        size, chunks = node.store.package_chunks(item.sha256)  # (read as they are sent)
        if wanted is None and size <= SPOOL_ABOVE:
            return Response(b"".join(chunks), media_type=media, headers=headers)
        if wanted is not None:
            span = _byte_range(wanted, size)
            if span is None:
                return _error(416, "API-RANGE", f"the range {wanted[:60]!r} is not within "
                              f"the package's {size} bytes", headers={
                                  "Content-Range": f"bytes */{size}"})
            start, end = span
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            _, chunks = node.store.package_chunks(item.sha256, start, end)
        headers["Content-Length"] = str(end - start if wanted is not None else size)
        return StreamingResponse(chunks, status_code=206 if wanted is not None else 200,
                                 media_type=media, headers=headers)

    @app.post("/v1/agencies/{code}/inbox/{item_id}/ack", summary="Acknowledge a fetched package",
              responses=_problems(401, 403, 404, 422, 503))
    def acknowledge(code: str, item_id: int, agency: Caller) -> dict[str, Any]:
        own(agency, code)
        if not 0 < item_id <= _MAX_ID or not node.store.acknowledge(code, item_id,
                                                                     node=node.node_id):
            raise HTTPException(404, ("API-NOT-FOUND", f"no inbox item {item_id}"))
        return {"id": item_id, "state": "acknowledged"}

    @app.get("/v1/documents", summary="Find your documents",
             responses=_problems(401, 422, 503))
    def documents(agency: Caller, number: str | None = None, recipient: str | None = None,
                  since: dt.datetime | None = None, until: dt.datetime | None = None,
                  kind: str | None = None, state: str | None = None,
                  overdue_days: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The documents your agencies sent through this node, newest first, each with
        every recipient's outcome (the filters of ``docaxis documents``: number and
        notation with or without diacritics, recipient, received since/until, kind,
        state, overdue working days). Times without a zone are Vietnam time."""
        senders = tuple(code for code in node.directory.agencies
                        if agency.covers(code, node.directory)) or tuple(agency.agencies)
        try:
            query = DocumentQuery(number=number, senders=senders, recipient=recipient,
                                  since=_zoned(since), until=_zoned(until), kind=kind,
                                  state=state, overdue_days=overdue_days, limit=limit)
        except QueryError as exc:
            raise HTTPException(422, ("API-BAD-QUERY", str(exc))) from None
        return [summary.to_dict() for summary in node.store.documents(query)]

    @app.get("/v1/trace/{document_id:path}", summary="The trace of one of your documents",
             responses=_problems(401, 404, 422, 503))
    def trace(document_id: str, agency: Caller) -> dict[str, Any]:
        # documents are keyed by (verified sender, DocumentId): the caller sees its own
        # agencies' document of that id; another agency's answers 404 as an unknown one
        # does (no existence oracle)
        mine = [s for s in node.store.senders_of(document_id)
                if agency.covers(s, node.directory)]
        found = node.store.trace(document_id, sender=mine[0] if mine else "-")
        if not found.events:
            raise HTTPException(404, ("API-NOT-FOUND", f"no document {document_id} of yours "
                                      "here"))
        return found.to_dict()

    return app


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` (or ``a-``, or ``-n``: the last n) as ``(start, end)``, end
    exclusive; None when it is not one satisfiable range of this many bytes."""
    unit, _, spec = header.strip().partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or "," in spec or not (
            (first.isdigit() or not first) and (last.isdigit() or not last)) or (
            not first and not last):
        return None
    if not first:  # the last n bytes
        count = int(last)
        return (max(0, size - count), size) if count and size else None
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    return (start, end) if start < end else None


def _zoned(value: dt.datetime | None) -> dt.datetime | None:
    """A time from a query string; one without a zone is Vietnam time."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=LOCAL_TIME)
