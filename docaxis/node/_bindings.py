"""The directory's signer bindings as the verifier's :class:`BindingPolicy`."""

from __future__ import annotations

from docaxis.directory import Directory
from docaxis.dsig import AgencyBinding, BindingPolicy, SubjectRule


def binding_policy(directory: Directory) -> BindingPolicy:
    """Pinned fingerprints and CA + subject rules of every agency of ``directory`` (the
    SAN URI ``urn:vn-gov:agency:<code>`` binds too).

    Raises
    ------
    ValueError
        A rule with an unreadable issuer name or an unknown attribute.
    """
    agencies = {}
    for agency in directory.agencies.values():
        if agency.certificate_fingerprints or agency.signers:
            agencies[agency.code] = AgencyBinding(
                frozenset(fp.lower() for fp in agency.certificate_fingerprints),
                tuple(SubjectRule(rule.issuer, rule.subject) for rule in agency.signers))
    return BindingPolicy(agencies)
