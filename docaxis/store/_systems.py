"""Document systems' VXP credentials: a ``systemId`` and an HMAC secret, bound to the
agencies the system acts for (a list of codes and/or whole subtrees of the directory).

The node must compute the HMAC of every request, so a secret cannot be kept as a hash as
API tokens are: it is sealed (AES-256-GCM, the ``systemId`` as associated data) under the
node's secret key — a file outside the database (``[vxp] secret_key``, created ``0600``
on first use). A copy of the database alone reveals no secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from docaxis._errors import DocaxisError
from docaxis.directory import Directory
from docaxis.store._binding import AgencyBinding
from docaxis.store._models import SystemRow, utcnow
from docaxis.store._store import Store, _aware


class SecretBoxError(DocaxisError):
    """A sealed secret that does not open: another node's key, or a changed row."""

    default_code = "VXP-SECRET-KEY"


class SecretBox:
    """AES-256-GCM under a key file, created (``0600``) the first time it is needed.

    Examples
    --------
    >>> box = SecretBox(Path("var/central/vxp-secret.key"))  # doctest: +SKIP
    >>> box.open(box.seal("s3cret", "000.00.01.H99"), "000.00.01.H99")  # doctest: +SKIP
    's3cret'
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._aead: AESGCM | None = None

    def _key(self) -> AESGCM:
        if self._aead is None:
            try:
                key = self.path.read_bytes()
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                key = AESGCM.generate_key(bit_length=256)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(key)
                    out.flush()
                    os.fsync(out.fileno())
            if len(key) != 32:
                raise SecretBoxError(f"{self.path}: not a 256-bit key ({len(key)} bytes)")
            self._aead = AESGCM(key)
        return self._aead

    def seal(self, secret: str, bound_to: str) -> str:
        nonce = os.urandom(12)
        sealed = self._key().encrypt(nonce, secret.encode("utf-8"), bound_to.encode("utf-8"))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, bound_to: str) -> str:
        raw = base64.b64decode(sealed)
        try:
            return self._key().decrypt(raw[:12], raw[12:], bound_to.encode("utf-8")
                                       ).decode("utf-8")
        except Exception as exc:  # cryptography's InvalidTag: wrong key or changed row
            raise SecretBoxError(f"the secret of {bound_to} does not open with {self.path} "
                                 f"({type(exc).__name__}): another node's key?") from None


@dataclass(frozen=True)
class System:
    """A document system (hệ thống quản lý văn bản) known to this node."""

    system_id: str
    binding: AgencyBinding
    may_register: bool
    label: str | None
    created_at: dt.datetime
    rotated_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def covers(self, code: str, directory: Directory) -> bool:
        """Whether the system acts for agency ``code`` (:meth:`AgencyBinding.covers`)."""
        return self.binding.covers(code, directory)

    def agency_codes(self, directory: Directory) -> list[str]:
        return self.binding.agency_codes(directory)


class SystemRegistry:
    """Issue, list, rotate and revoke document systems' credentials; look one up with its
    secret opened (what the VXP endpoint does for each request)."""

    def __init__(self, store: Store, box: SecretBox) -> None:
        self.store, self.box = store, box

    def issue(self, system_id: str, *, agencies: tuple[str, ...] = (),
              subtrees: tuple[str, ...] = (), may_register: bool = False,
              label: str | None = None) -> str:
        """A new credential; returns its secret (shown once). A revoked ``systemId`` may be
        issued again (a new secret).

        Raises
        ------
        SystemExists
            A live credential has this ``systemId``.
        """
        secret = secrets.token_urlsafe(32)
        with self.store.transaction() as session:
            row = session.get(SystemRow, system_id)
            if row is not None and row.revoked_at is None:
                raise SystemExists(f"system {system_id} already has a live credential: "
                                   "rotate or revoke it")
            if row is None:
                row = SystemRow(system_id=system_id)
                session.add(row)
            row.secret_sealed = self.box.seal(secret, system_id)
            row.agencies, row.subtrees = json.dumps(list(agencies)), json.dumps(list(subtrees))
            row.may_register, row.label = may_register, label
            row.created_at, row.rotated_at, row.revoked_at = utcnow(), None, None
        return secret

    def rotate(self, system_id: str) -> str | None:
        """A new secret for a live system (the old one stops working at once); None if
        there is no live system of that id."""
        secret = secrets.token_urlsafe(32)
        with self.store.transaction() as session:
            row = session.get(SystemRow, system_id)
            if row is None or row.revoked_at is not None:
                return None
            row.secret_sealed, row.rotated_at = self.box.seal(secret, system_id), utcnow()
        return secret

    def revoke(self, system_id: str) -> bool:
        with self.store.transaction() as session:
            row = session.get(SystemRow, system_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            return True

    def systems(self) -> list[System]:
        """Every system, live or revoked (never a secret)."""
        with self.store.session() as session:
            return [_system(row) for row in
                    session.scalars(select(SystemRow).order_by(SystemRow.system_id))]

    def live(self, system_id: str) -> tuple[System, str] | None:
        """A live system and its secret, or None (unknown or revoked)."""
        with self.store.session() as session:
            row = session.get(SystemRow, system_id)
            if row is None or row.revoked_at is not None:
                return None
            return _system(row), self.box.open(row.secret_sealed, system_id)


class SystemExists(DocaxisError):
    default_code = "VXP-SYSTEM-EXISTS"


def _system(row: SystemRow) -> System:
    return System(row.system_id, AgencyBinding.from_columns(row.agencies, row.subtrees),
                  bool(row.may_register), row.label,
                  _aware(row.created_at), _aware(row.rotated_at) if row.rotated_at else None,
                  _aware(row.revoked_at) if row.revoked_at else None)
