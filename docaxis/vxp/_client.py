"""A VXP client that behaves as the national axis's Java SDK does (``SDKVXP-2.0.1``):
the uplink of a node to a VXP axis, and the tests' stand-in for an agency's document
system.

Faithful on purpose, quirks included: one header map for the client's whole life (every
key a call was ever given is sent again on every later call, the timestamp is the one of
construction), the ``Content-Type`` header per operation, ``sendEdoc``'s body followed by
``\\r\\n`` with a lossy-hex ``hash-file``, ``{}`` bodies where the SDK posts nothing,
``Expect: 100-continue`` on a non-empty body.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from docaxis.vxp._protocol import hash_file, signed_headers, timestamp

JSON = "application/json"
OCTETS = "application/octet-stream"


class VxpClient:
    """One SDK service object: an endpoint, a ``systemId`` and its secret.

    Parameters
    ----------
    endpoint:
        The base URL; each operation is ``endpoint + "/" + name`` (nothing normalised).
    system_id, secret:
        The document system's identity and HMAC key (the key never travels).
    transport:
        An ``httpx`` transport (an ASGI app in tests); the default connects over TCP.

    Examples
    --------
    >>> client = VxpClient("http://127.0.0.1:8080/vxp", "000.00.01.H99", "s3cret")  # doctest: +SKIP
    >>> (await client.send_edoc(package, sender="000.00.01.H99"))["DocId"]  # doctest: +SKIP
    '68edb8c8c2dcb14db773ce44'
    """

    def __init__(self, endpoint: str, system_id: str, secret: str, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 60.0) -> None:
        self.endpoint, self.system_id, self.secret = endpoint, system_id, secret
        self.stamp = timestamp()  # set once, as the SDK does
        #: the SDK's header map: it only ever grows (stale keys travel on every call)
        self.entries: dict[str, str] = {}
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> VxpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def headers(self, params: dict[str, Any], content_type: str) -> list[tuple[str, str]]:
        """Merge ``params`` into the lifelong map (``to`` kept as JSON text) and sign it."""
        for key, value in params.items():
            self.entries[key] = (json.dumps(value, separators=(",", ":"))
                                 if isinstance(value, list) else str(value))
        return signed_headers(self.system_id, self.secret, self.entries,
                              content_type=content_type, stamp=self.stamp)

    async def call(self, operation: str, params: dict[str, Any] | None = None, *,
                   body: bytes = b"", content_type: str = JSON,
                   method: str = "POST") -> httpx.Response:
        """One raw operation (the answer is returned whatever its status, as the SDK
        ignores HTTP statuses)."""
        headers = self.headers(params or {}, content_type)
        if body:
            headers.append(("Expect", "100-continue"))
        # header values as UTF-8 bytes: what the SDK sends on a URL without a port
        # (VXP.md §3.3), and what the HMAC was computed over
        raw = [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]
        return await self._http.request(method, f"{self.endpoint}/{operation}",
                                        headers=raw, content=body)

    async def json(self, operation: str, params: dict[str, Any] | None = None, *,
                   body: bytes = b"") -> dict[str, Any]:
        answer = await self.call(operation, params, body=body)
        result: dict[str, Any] = json.loads(answer.content)
        return result

    # -- documents ---------------------------------------------------------------------
    async def send_edoc(self, package: bytes, *, sender: str, message_type: str = "edoc",
                        to: list[str] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"from": sender, "servicetype": "eDoc",
                                  "messagetype": message_type, "hash-file": hash_file(package)}
        if to is not None:
            params["to"] = to
        answer = await self.call("sendEdoc", params, body=package + b"\r\n",
                                 content_type=OCTETS)
        result: dict[str, Any] = json.loads(answer.content.decode("ascii", "replace"))
        return result

    async def received(self, message_type: str = "edoc") -> dict[str, Any]:
        return await self.json("getReceivedEdocList",
                               {"servicetype": "eDoc", "messagetype": message_type})

    async def get_edoc(self, doc_id: str, *, key: str = "docId") -> tuple[dict[str, Any], bytes]:
        """``getEdoc``: the envelope, and the package's bytes decoded from ``data``."""
        result = await self.json("getEdoc", {key: doc_id, "filePath": "/tmp/edoc"},
                                 body=b"{}")
        return result, base64.b64decode(result.get("data") or "")

    async def download_edoc(self, doc_id: str) -> bytes:
        answer = await self.call("downloadEdoc", {"docId": doc_id, "filePath": "/tmp/edoc"},
                                 method="GET")
        return answer.content

    async def update_status(self, doc_id: str, status: str, description: str | None = None,
                            *, key: str = "docId") -> dict[str, Any]:
        params = {key: doc_id, "status": status}
        if description is not None:
            params["description"] = description
        return await self.json("updateStatus", params, body=b"{}")

    async def sent(self, message_type: str = "edoc",
                   doc_id: str | None = None) -> dict[str, Any]:
        params = {"servicetype": "eDoc", "messagetype": message_type}
        if doc_id is not None:
            params["docId"] = doc_id
        return await self.json("getSentEdocList", params)

    async def count(self, operation: str = "countReceiveEdoc") -> dict[str, Any]:
        return await self.json(operation, body=b"{}")

    # -- agencies ----------------------------------------------------------------------
    async def agencies(self, operation: str = "getAgenciesList",
                       params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.json(operation, params)

    async def register_agency(self, data: bytes) -> dict[str, Any]:
        return await self.json("registerAgency", body=data)

    async def delete_agency(self, code: str) -> dict[str, Any]:
        return await self.json("deleteAgency", {"AgencyCode": code}, body=b"{}")
