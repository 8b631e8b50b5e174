"""The directory: agencies, nodes, tiers and routes (topology as data)."""

from docaxis.directory._directory import (
    Agency,
    Directory,
    DirectoryError,
    Node,
    Route,
    RouteKind,
    SignerRule,
    UnknownDestination,
    mask_url,
)

__all__ = [
    "Agency",
    "Directory",
    "DirectoryError",
    "Node",
    "Route",
    "RouteKind",
    "SignerRule",
    "UnknownDestination",
    "mask_url",
]
