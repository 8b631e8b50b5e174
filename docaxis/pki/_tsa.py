"""A development timestamping authority (RFC 3161) for tests, benchmarks and the demo.

A production node names a real TSA (``[audit] tsa_url``); this one answers the same
protocol — ``POST`` of a ``TimeStampReq`` (``application/timestamp-query``), a
``TimeStampResp`` back (``application/timestamp-reply``) — with a token signed by a TSA
certificate issued under the dev root (extended key usage ``timeStamping``, critical, as
RFC 3161 §2.3 requires). It only issues: whether a token is trusted is
:mod:`docaxis.dsig`'s decision.

Examples
--------
>>> tsa = DevTimestampAuthority.issue(pki)  # doctest: +SKIP
>>> server = serve_tsa(tsa, "127.0.0.1", 0)  # doctest: +SKIP
>>> url = f"http://127.0.0.1:{server.server_address[1]}/"  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import logging
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from asn1crypto import algos, cms, core, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from docaxis.pki._pki import (
    KeyType,
    PKIError,
    PrivateKey,
    _write_cert,
    _write_private,
    generate_key,
    load_certificates,
    load_private_key,
)

_log = logging.getLogger("docaxis.pki")

#: the policy under which the dev TSA stamps (an OID from a UUID, RFC 4122 §2.25)
DEV_TSA_POLICY = "2.25.329800735698586629295641978511506172918"
#: where :meth:`DevTimestampAuthority.issue` keeps its key and certificate in a PKI folder
TSA_FOLDER = "tsa"
#: the largest request the dev TSA reads (a real one is ≈ 60 bytes)
MAX_REQUEST = 4096


@dataclass(frozen=True)
class DevTimestampAuthority:
    """A TSA key and certificate (and the chain up to the root) that answer requests.

    Parameters
    ----------
    key:
        The TSA's private key.
    chain:
        The TSA certificate first, then its issuers.
    policy:
        The TSA policy OID put in every token.
    """

    key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    policy: str = DEV_TSA_POLICY

    @classmethod
    def issue(cls, pki_folder: Path | str, *, key_type: KeyType = "rsa2048", days: int = 730,
              now: dt.datetime | None = None) -> DevTimestampAuthority:
        """Issue (or replace) the dev TSA's certificate under the dev root in ``pki_folder``."""
        folder = Path(pki_folder)
        try:
            root_key = load_private_key(folder / "root" / "ca.key")
            root = load_certificates(folder / "root" / "ca.pem")[0]
        except (OSError, ValueError, IndexError):
            raise PKIError(f"{folder} holds no PKI root (run: docaxis keys init --dir "
                           f"{folder})") from None
        now = now or dt.datetime.now(dt.UTC)
        key = generate_key(key_type)
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "docaxis development PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, "docaxis dev timestamping authority"),
        ])
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
        _write_private(folder / TSA_FOLDER / "key.pem", key)
        _write_cert(folder / TSA_FOLDER / "cert.pem", cert)
        _write_cert(folder / TSA_FOLDER / "chain.pem", cert, root)
        return cls(key, (cert, root))

    @classmethod
    def open(cls, pki_folder: Path | str) -> DevTimestampAuthority:
        """The dev TSA issued earlier in ``pki_folder``."""
        folder = Path(pki_folder) / TSA_FOLDER
        try:
            return cls(load_private_key(folder / "key.pem"),
                       tuple(load_certificates(folder / "chain.pem")))
        except (OSError, ValueError):
            raise PKIError(f"{folder} holds no dev TSA (run: docaxis keys tsa --dir "
                           f"{Path(pki_folder)})") from None

    def respond(self, request: bytes, *, now: dt.datetime | None = None,
                serial: int | None = None) -> bytes:
        """A ``TimeStampResp`` (DER) for a ``TimeStampReq`` (DER): granted with a token, or
        rejected (``badDataFormat``, ``badAlg``) when the request is not one it can stamp."""
        try:
            parsed = tsp.TimeStampReq.load(request, strict=True)
            imprint = parsed["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            digest = imprint["hashed_message"].native
        except (ValueError, TypeError, KeyError):
            return _rejection("badDataFormat", "not a DER TimeStampReq")
        if algorithm not in _DIGEST_SIZES or len(digest) != _DIGEST_SIZES[algorithm]:
            return _rejection("badAlg", f"unsupported message imprint ({algorithm})")
        now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        info = tsp.TSTInfo({
            "version": "v1", "policy": self.policy,
            "message_imprint": {"hash_algorithm": {"algorithm": algorithm},
                                "hashed_message": digest},
            "serial_number": serial if serial is not None else next(_SERIALS),
            "gen_time": now,
            "accuracy": {"seconds": 1},
            **({"nonce": parsed["nonce"].native} if parsed["nonce"].native is not None
               else {}),
        })
        content = info.dump()
        cert = self.chain[0]
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        asn1_cert = asn1_x509.Certificate.load(cert_der)
        signed_attrs = cms.CMSAttributes([
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "signing_time", "values": [cms.Time({"utc_time": now})]},
            {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
            {"type": "signing_certificate_v2", "values": [{
                "certs": [{"cert_hash": hashlib.sha256(cert_der).digest()}]}]},
        ])
        to_sign = signed_attrs.dump()
        if isinstance(self.key, rsa.RSAPrivateKey):
            signature = self.key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
            signature_algorithm = "sha256_rsa"
        elif isinstance(self.key, ec.EllipticCurvePrivateKey):
            signature = self.key.sign(to_sign, ec.ECDSA(hashes.SHA256()))
            signature_algorithm = "sha256_ecdsa"
        else:  # pragma: no cover - generate_key makes only these
            raise PKIError(f"the dev TSA cannot sign with a {type(self.key).__name__}")
        signed_data = cms.SignedData({
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info",
                                   "content": core.ParsableOctetString(content)},
            "certificates": [asn1_cert],
            "signer_infos": [{
                "version": "v1",
                "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
                    "issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number}}),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": signature_algorithm},
                "signature": signature,
            }],
        })
        response: bytes = tsp.TimeStampResp({
            "status": {"status": "granted"},
            "time_stamp_token": {"content_type": "signed_data", "content": signed_data},
        }).dump()
        return response


_SERIALS = itertools.count(int(dt.datetime.now(dt.UTC).timestamp() * 1000))
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}


def _rejection(failure: str, text: str) -> bytes:
    """``TimeStampResp ::= SEQUENCE { status PKIStatusInfo }`` without a token (asn1crypto's
    TimeStampResp makes the token mandatory, RFC 3161 does not: the DER is wrapped here)."""
    status: bytes = tsp.PKIStatusInfo({"status": "rejection", "status_string": [text],
                                       "fail_info": tsp.PKIFailureInfo({failure})}).dump()
    length = len(status)
    header = (bytes([length]) if length < 0x80
              else bytes([0x80 | ((length.bit_length() + 7) // 8)])
              + length.to_bytes((length.bit_length() + 7) // 8, "big"))
    return b"\x30" + header + status


class _Handler(BaseHTTPRequestHandler):
    authority: DevTimestampAuthority
    available: threading.Event

    def do_POST(self) -> None:
        if not self.available.is_set():  # an outage, for tests: the service answers 503
            self._answer(503, b"the timestamping service is down", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if (self.headers.get("Content-Type") != "application/timestamp-query"
                or not 0 < length <= MAX_REQUEST):
            self._answer(400, b"expected an application/timestamp-query of at most "
                         b"4096 bytes", "text/plain")
            return
        self._answer(200, self.authority.respond(self.rfile.read(length)),
                     "application/timestamp-reply")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("tsa.request " + format, *args)


class TimestampServer(ThreadingHTTPServer):
    """The dev TSA over HTTP on a thread; :attr:`available` cleared answers 503 (an outage
    a test can switch on and off without losing the port)."""

    daemon_threads = True

    def __init__(self, authority: DevTimestampAuthority, host: str, port: int) -> None:
        self.available = threading.Event()
        self.available.set()
        handler = type("Handler", (_Handler,), {"authority": authority,
                                                "available": self.available})
        super().__init__((host, port), handler)
        self._thread = threading.Thread(target=self.serve_forever, name="dev tsa",
                                        daemon=True)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up before its answer (a node stopping) is a line, not a
        traceback; anything else is logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            _log.info("tsa.client_gone", extra={"code": "TSA-CLIENT-GONE",
                                                "client": str(client_address)})
        else:
            _log.error("tsa.request_failed", exc_info=True, extra={
                "code": "TSA-INTERNAL", "client": str(client_address)})

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> TimestampServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def serve_tsa(authority: DevTimestampAuthority, host: str = "127.0.0.1",
              port: int = 0) -> TimestampServer:
    """Serve ``authority`` at ``http://host:port/`` on a thread (port 0: any free one)."""
    return TimestampServer(authority, host, port).start()
