"""VXP on the wire: the request signature, ``hash-file`` and the response envelope.

Everything here follows ``docs/vxp.md`` and the shared description of the national axis
protocol (VXP.md): the header map the client SDK signs, its lossy hex, its timestamp.
Pure functions and small types — no HTTP server, no store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: every VXP header name starts with this (matched case-insensitively on the way in)
PREFIX = "XroadVnpt-"
SIGN_HEADER = "XroadVnpt-sign-header"
SIGN_HEADER_KEY = "XroadVnpt-sign-header-key"
HASH_HEADER = "XroadVnpt-hash-header"
SYSTEM_ID = "XroadVnpt-systemid"
USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
VERSION = "3.0.201608"


class VxpError(Exception):
    """A VXP request refused: ``code`` is the stable ``ErrorCode`` answered (never "0")."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def lossy_hex(digest: bytes) -> str:
    """Hex without zero padding per byte, as the SDK writes ``hash-file``: ``0x05`` is
    ``5``, not ``05`` (so 33 to 64 characters for a SHA-256).

    Examples
    --------
    >>> lossy_hex(bytes([0x79, 0x05, 0x00, 0xab]))
    '7950ab'
    """
    return "".join(format(byte, "x") for byte in digest)


def hash_file(data: bytes) -> str:
    """The ``hash-file`` of a package's bytes (without the CRLF the SDK appends)."""
    return lossy_hex(hashlib.sha256(data).digest())


def strip_crlf(body: bytes) -> bytes:
    """A ``sendEdoc`` body without the one ``\\r\\n`` the SDK writes after the file."""
    return body[:-2] if body.endswith(b"\r\n") else body


def timestamp(at: dt.datetime | None = None) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in local time: the ``+SSSS`` is a literal ``+`` and the
    milliseconds on four digits, not a UTC offset (the SDK's format).

    Examples
    --------
    >>> timestamp(dt.datetime(2026, 11, 29, 15, 19, 52, 887000))
    '29112026T151952+0887'
    """
    at = at or dt.datetime.now()
    return at.strftime("%d%m%YT%H%M%S") + f"+{at.microsecond // 1000:04d}"


def sign_header_value(entries: Iterable[tuple[str, str]]) -> str:
    """The ``XroadVnpt-sign-header`` JSON as gson writes it: compact, non-ASCII kept,
    ``"``, ``\\`` and control characters escaped, in the map's order."""
    return json.dumps({PREFIX + name: value for name, value in entries},
                      ensure_ascii=False, separators=(",", ":"))


def signature(secret: str, sign_header: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the raw sign-header bytes, keyed by the secret's
    UTF-8 bytes (the secret is used as text, never base64-decoded)."""
    return hmac.new(secret.encode("utf-8"), sign_header, hashlib.sha256).hexdigest()


def signed_headers(system_id: str, secret: str, entries: Mapping[str, str], *,
                   content_type: str, stamp: str) -> list[tuple[str, str]]:
    """The headers a VXP client sends: ``entries`` (the service object's whole map — a
    long-lived client re-sends every key it was ever given) after ``systemid``,
    ``timestamp`` and ``Content-Type``, signed.

    Examples
    --------
    >>> headers = dict(signed_headers("000.00.01.H99", "placeholder-secret-a", {},
    ...                               content_type="application/json",
    ...                               stamp="29112026T151952+0887"))
    >>> headers["XroadVnpt-hash-header"][:16]
    '2e77a0c226176781'
    """
    ordered = [("systemid", system_id), ("timestamp", stamp), ("Content-Type", content_type)]
    ordered += [(k, v) for k, v in entries.items()
                if k not in ("systemid", "timestamp", "Content-Type")]
    value = sign_header_value(ordered)
    headers = [(PREFIX + name, v) for name, v in ordered]
    headers += [("Content-Type", content_type),
                (SIGN_HEADER_KEY, ";".join(name for name, _ in ordered)),
                (SIGN_HEADER, value),
                (HASH_HEADER, signature(secret, value.encode("utf-8"))),
                ("User-Agent", USER_AGENT), ("XroadVnpt-version", VERSION)]
    return headers


@dataclass(frozen=True)
class SignedRequest:
    """A request's signed parameters, as received: read them with :meth:`param`.

    ``raw`` is the exact bytes of the sign-header (the HMAC is computed over them);
    ``params`` its entries without the prefix, in order.
    """

    system_id: str
    raw: bytes = field(repr=False)
    hash: str = field(repr=False)
    params: tuple[tuple[str, str], ...]

    @classmethod
    def read(cls, headers: Iterable[tuple[bytes, bytes]]) -> SignedRequest:
        """From raw ASGI headers (names lower-case, values the bytes received).

        Raises
        ------
        VxpError
            ``VXP-UNSIGNED`` when ``systemid``, the sign-header or its hash is missing;
            ``VXP-BAD-SIGN-HEADER`` when the sign-header is not a JSON object of
            ``XroadVnpt-`` entries or names another system than the header.
        """
        found: dict[bytes, bytes] = {}
        for name, value in headers:
            found.setdefault(name.lower(), value)
        system = found.get(SYSTEM_ID.lower().encode())
        raw = found.get(SIGN_HEADER.lower().encode())
        digest = found.get(HASH_HEADER.lower().encode())
        if system is None or raw is None or digest is None:
            missing = [n for n, v in ((SYSTEM_ID, system), (SIGN_HEADER, raw),
                                      (HASH_HEADER, digest)) if v is None]
            raise VxpError("VXP-UNSIGNED", f"missing header(s): {', '.join(missing)}")
        system_id = system.decode("latin-1").strip()
        try:
            signed: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise VxpError("VXP-BAD-SIGN-HEADER", f"{SIGN_HEADER} is not JSON") from None
        if not isinstance(signed, dict) or not all(
                isinstance(k, str) and k.lower().startswith(PREFIX.lower())
                and isinstance(v, str | int | float | bool) for k, v in signed.items()):
            raise VxpError("VXP-BAD-SIGN-HEADER", f"{SIGN_HEADER} must be a JSON object of "
                                                  f"{PREFIX}<name> string entries")
        params = tuple((k[len(PREFIX):], v if isinstance(v, str) else json.dumps(v))
                       for k, v in signed.items())
        signed_system = [v for k, v in params if k.lower() == "systemid"]
        if signed_system and signed_system[0] != system_id:
            raise VxpError("VXP-BAD-SIGN-HEADER", "the signed systemid is not the "
                                                  f"{SYSTEM_ID} header")
        return cls(system_id, raw, digest.decode("latin-1").strip().lower(), params)

    def verify(self, secret: str) -> bool:
        """Whether the hash header is the HMAC of the raw sign-header under ``secret``
        (compared in constant time)."""
        return hmac.compare_digest(signature(secret, self.raw), self.hash)

    def param(self, name: str) -> str | None:
        """A signed parameter: the exact spelling first (``docId`` over ``docid``), then
        any case-variant (the first one signed). Stale keys a long-lived client re-sends
        are only read by the operations that define them."""
        for key, value in self.params:
            if key == name:
                return value
        lowered = name.lower()
        for key, value in self.params:
            if key.lower() == lowered:
                return value
        return None


def envelope(code: str = "0", description: str = "Success", **fields: Any) -> bytes:
    """A response body: ``status`` (``OK``/``FAIL``), ``ErrorCode`` and ``ErrorDesc``
    always present, then ``fields``; ASCII-only JSON (the SDK reads ``sendEdoc``'s answer
    as US-ASCII), never compressed."""
    body = {"status": "OK" if code == "0" else "FAIL", "ErrorCode": code,
            "ErrorDesc": description, **fields}
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
