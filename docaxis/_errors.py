"""The root of docaxis's exception hierarchy.

Every error docaxis raises on purpose derives from :class:`DocaxisError` and carries a
stable, machine-readable ``code`` (for example ``EDX-ID-FORMAT``) that appears in CLI
output, JSON reports and HTTP error bodies. Codes never change meaning once published.
"""

from __future__ import annotations


class DocaxisError(Exception):
    """Base class of every deliberate docaxis error.

    Parameters
    ----------
    message:
        Human-readable explanation naming what was wrong and where.
    code:
        Stable error code; subclasses define a default in ``default_code``.
    """

    default_code = "DOCAXIS-ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
