"""Which agencies a credential acts for: a list of codes and/or whole subtrees of the
directory (a node and every node below it). REST API tokens and VXP systems share it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from docaxis.directory import Directory


@dataclass(frozen=True)
class AgencyBinding:
    """The agencies a credential acts for.

    Examples
    --------
    >>> binding = AgencyBinding(("000.00.00.H01",), ("soctson",))
    >>> binding.covers("000.01.07.H01", directory)  # doctest: +SKIP
    True
    """

    agencies: tuple[str, ...] = ()
    subtrees: tuple[str, ...] = ()

    def covers(self, code: str, directory: Directory) -> bool:
        """Whether it acts for agency ``code``: listed, or served by a node of one of its
        subtrees (that node or any below it)."""
        if code in self.agencies:
            return True
        agency = directory.agencies.get(code)
        if agency is None or not self.subtrees or agency.node not in directory.nodes:
            return False
        return any(node in self.subtrees for node in directory.path_to_root(agency.node))

    def agency_codes(self, directory: Directory) -> list[str]:
        """Every agency it acts for, sorted."""
        return sorted(set(self.agencies) | {code for code in directory.agencies
                                             if self.covers(code, directory)})

    def describe(self) -> str:
        """One line for listings: the codes, then ``node/*`` for each subtree."""
        return " ".join([*self.agencies, *(f"{node}/*" for node in self.subtrees)])

    @classmethod
    def from_columns(cls, agencies: str | None, subtrees: str | None,
                     fallback: str | None = None) -> AgencyBinding:
        """From the JSON list columns of a credential row (``fallback``: the single
        agency of a credential issued before bindings were lists)."""
        codes = tuple(json.loads(agencies)) if agencies else ((fallback,) if fallback else ())
        return cls(codes, tuple(json.loads(subtrees)) if subtrees else ())
