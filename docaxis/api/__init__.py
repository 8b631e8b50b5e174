"""The agency-facing HTTP API (FastAPI)."""

from docaxis.api._app import create_app

__all__ = ["create_app"]
