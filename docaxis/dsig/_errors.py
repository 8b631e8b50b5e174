"""Failure reasons of the signature layer (each with a stable code)."""

from __future__ import annotations

from typing import NamedTuple

from docaxis._errors import DocaxisError


class Failure(NamedTuple):
    """One reason a signature does not verify."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class SignatureError(DocaxisError):
    """Signing could not be done (bad key, already signed, not an edXML package)."""

    default_code = "EDX-SIG-SIGN"
