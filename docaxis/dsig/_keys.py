"""Where signing keys live: PEM files (plain or encrypted), PKCS#12 files, PKCS#11 tokens.

Agencies sign with USB tokens and HSMs as often as with files. Every source gives a
:class:`SigningKey`: something that signs bytes the XMLDSig way (RSA PKCS#1 v1.5 with
SHA-256, or ECDSA-SHA256 as ``r‖s``) and names its public key — the :class:`Signer`
needs nothing else, so a token's key never leaves the token.

Errors are :class:`KeyLoadError` with one sentence (wrong password, unknown format,
no such token or key); never a traceback.

Examples
--------
>>> key, chain = load_signing_key("agency.p12", password=b"secret")  # doctest: +SKIP
>>> key = Pkcs11Key.open("/usr/lib/softhsm/libsofthsm2.so", token="agency",
...                      key_label="signing", pin="1234")  # doctest: +SKIP
"""

from __future__ import annotations

import getpass
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import pkcs12

from docaxis.dsig._errors import SignatureError

KeyKind = Literal["rsa", "ecdsa"]


class KeyLoadError(SignatureError):
    """A signing key could not be loaded (wrong password, format, token or label)."""

    default_code = "EDX-SIG-KEY"


class SigningKey(Protocol):
    """A private key that signs the XMLDSig way, wherever it is kept."""

    @property
    def kind(self) -> KeyKind: ...

    def public_key(self) -> PublicKeyTypes: ...

    def sign(self, data: bytes) -> bytes:
        """RSA: PKCS#1 v1.5 over SHA-256; ECDSA: SHA-256, returned as ``r‖s``."""
        ...


@dataclass(frozen=True)
class SoftwareKey:
    """A key held in memory (read from a PEM or PKCS#12 file)."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @property
    def kind(self) -> KeyKind:
        return "rsa" if isinstance(self.key, rsa.RSAPrivateKey) else "ecdsa"

    def public_key(self) -> PublicKeyTypes:
        return self.key.public_key()

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        der = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        size = (self.key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


class Pkcs11Key:
    """A key on a PKCS#11 token (USB token, HSM, SoftHSM2); it never leaves the token.

    The session stays open for the life of the object; signing is serialised (one
    operation at a time per session, as PKCS#11 requires).
    """

    def __init__(self, session: Any, private: Any, public: PublicKeyTypes,
                 kind: KeyKind) -> None:
        import threading

        self._session, self._private, self._public, self._kind = session, private, public, kind
        self._lock = threading.Lock()

    @classmethod
    def open(cls, module: str | Path, *, token: str, key_label: str,
             pin: str) -> Pkcs11Key:
        """Open ``token`` through the PKCS#11 ``module`` and find the key ``key_label``.

        Raises
        ------
        KeyLoadError
            No such module, token or key, or a wrong PIN.
        """
        try:
            import pkcs11
            from pkcs11 import KeyType, ObjectClass
            from pkcs11.util.ec import encode_ec_public_key
            from pkcs11.util.rsa import encode_rsa_public_key
        except ImportError:  # pragma: no cover - python-pkcs11 is a dependency
            raise KeyLoadError("PKCS#11 needs the python-pkcs11 package") from None
        try:
            lib = pkcs11.lib(str(module))
        except (RuntimeError, OSError) as exc:
            raise KeyLoadError(f"cannot load the PKCS#11 module {module}: {exc}") from None
        try:
            session = lib.get_token(token_label=token).open(user_pin=pin)
        except pkcs11.exceptions.NoSuchToken:
            raise KeyLoadError(f"no PKCS#11 token labelled {token!r}") from None
        except pkcs11.exceptions.PinIncorrect:
            raise KeyLoadError(f"wrong PIN for the PKCS#11 token {token!r}") from None
        except pkcs11.exceptions.PKCS11Error as exc:
            raise KeyLoadError(f"cannot open the PKCS#11 token {token!r}: "
                               f"{type(exc).__name__}") from None
        try:
            private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
            public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=key_label)
        except (pkcs11.exceptions.NoSuchKey, pkcs11.exceptions.MultipleObjectsReturned):
            session.close()
            raise KeyLoadError(f"no single key pair labelled {key_label!r} on token "
                               f"{token!r}") from None
        if private.key_type == KeyType.RSA:
            der, kind = encode_rsa_public_key(public), "rsa"  # type: ignore[arg-type]
        elif private.key_type == KeyType.EC:
            der, kind = encode_ec_public_key(public), "ecdsa"  # type: ignore[arg-type]
        else:
            session.close()
            raise KeyLoadError(f"the key {key_label!r} is neither RSA nor EC")
        return cls(session, private, serialization.load_der_public_key(der),
                   kind)  # type: ignore[arg-type]

    @property
    def kind(self) -> KeyKind:
        return self._kind

    def public_key(self) -> PublicKeyTypes:
        return self._public

    def sign(self, data: bytes) -> bytes:
        from pkcs11 import Mechanism

        with self._lock:
            if self._kind == "rsa":
                return bytes(self._private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
            # CKM_ECDSA over the digest (tokens differ on CKM_ECDSA_SHA256); PKCS#11
            # returns r‖s, which is XMLDSig's form
            digest = hashlib.sha256(data).digest()
            return bytes(self._private.sign(digest, mechanism=Mechanism.ECDSA))

    def close(self) -> None:
        self._session.close()


def password_from(*, file: str | Path | None = None, env: str | None = None,
                  prompt: bool = False) -> bytes | None:
    """A key password from a file (first line), an environment variable or a prompt.

    Raises
    ------
    KeyLoadError
        The file cannot be read or the variable is not set.
    """
    if file is not None:
        try:
            return Path(file).read_bytes().splitlines()[0] if Path(file).stat().st_size \
                else b""
        except OSError as exc:
            raise KeyLoadError(f"cannot read the password file {file}: {exc.strerror}") \
                from None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise KeyLoadError(f"the environment variable {env} (the key password) is not set")
        return value.encode()
    if prompt:
        return getpass.getpass("key password: ").encode()
    return None


def load_signing_key(path: str | Path, *, password: bytes | None = None,
                     certificates: str | Path | None = None,
                     ) -> tuple[SoftwareKey, list[x509.Certificate]]:
    """A signing key and its certificate chain from a PEM key file (plain or encrypted;
    the chain from ``certificates``) or a PKCS#12 file (``.p12``/``.pfx``: key, certificate
    and CAs in one, ``certificates`` optional).

    Raises
    ------
    KeyLoadError
        Unreadable file, wrong password, unknown format, or no certificate for the key.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"cannot read {path}: {exc.strerror}") from None
    chain: list[x509.Certificate] = []
    if path.suffix.lower() in (".p12", ".pfx") or not data.lstrip().startswith(b"-----"):
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password)
        except ValueError as exc:
            reason = "wrong password" if "password" in str(exc).lower() or password else \
                "not a PKCS#12 file, or it needs a password"
            raise KeyLoadError(f"{path}: {reason}") from None
        if key is None:
            raise KeyLoadError(f"{path} holds no private key")
        chain = [c for c in (cert, *extra) if c is not None]
    else:
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except TypeError:
            raise KeyLoadError(f"{path} is encrypted: give its password (--password-file, "
                               "--password-env or --password-prompt)" if password is None
                               else f"{path} is not encrypted: give no password") from None
        except ValueError:
            raise KeyLoadError(f"{path}: wrong password, or not a PEM private key") from None
    if certificates is not None:
        try:
            chain = x509.load_pem_x509_certificates(Path(certificates).read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyLoadError(f"cannot read certificates from {certificates}: {exc}") \
                from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyLoadError(f"{path}: only RSA and EC keys sign")
    if not chain:
        raise KeyLoadError(f"no certificate for the key in {path} (give --cert)")
    return SoftwareKey(key), _leaf_first(chain, key.public_key())


def _leaf_first(chain: list[x509.Certificate],
                public: PublicKeyTypes) -> list[x509.Certificate]:
    """The certificate of ``public`` first (PKCS#12 files list them in any order)."""
    raw = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = [c for c in chain if c.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == raw]
    return mine[:1] + [c for c in chain if c not in mine[:1]]
