"""Which certificate may sign for which agency: binding rules as data.

A certificate from a real CA (VNPT-CA, Viettel-CA, the government's dedicated-signature
CA) does not carry docaxis's ``urn:vn-gov:agency:<code>`` subjectAltName, so the binding
of a signer to its agency comes from the directory, per agency:

* **pinned certificates** — SHA-256 fingerprints of the certificates it signs with;
* **subject rules** — "a certificate issued by *this* CA whose subject has *these*
  attributes" (``UID``, ``organizationIdentifier``, ``serialNumber``, ``CN`` … or a
  dotted OID), the CA named by its subject (RFC 4514) or ``sha256:<fingerprint>``;
* the **SAN URI** ``urn:vn-gov:agency:<code>`` stays one rule among them (on by default).

Any one rule that matches binds; nothing else does — never the CN alone.

Examples
--------
>>> policy = BindingPolicy({"000.00.00.G22": AgencyBinding(
...     fingerprints=frozenset({"ab12…"}),
...     rules=(SubjectRule("CN=VNPT Certification Authority,O=VNPT Group,C=VN",
...                        (("UID", "MST:0100100079"),)),))})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

from docaxis.dsig._names import agency_code_of

#: attribute names a rule may use (besides dotted OIDs)
ATTRIBUTES: dict[str, x509.ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "C": NameOID.COUNTRY_NAME,
    "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "UID": NameOID.USER_ID, "serialNumber": NameOID.SERIAL_NUMBER,
    "organizationIdentifier": x509.ObjectIdentifier("2.5.4.97"),
    "emailAddress": NameOID.EMAIL_ADDRESS, "title": NameOID.TITLE,
}


def attribute_oid(name: str) -> x509.ObjectIdentifier:
    """The OID of an attribute name (``UID``, ``organizationIdentifier``, ``2.5.4.97``).

    Raises
    ------
    ValueError
        For a name that is neither known nor a dotted OID.
    """
    if name in ATTRIBUTES:
        return ATTRIBUTES[name]
    if name.replace(".", "").isdigit() and "." in name:
        return x509.ObjectIdentifier(name)
    raise ValueError(f"unknown subject attribute {name!r} (use one of "
                     f"{', '.join(ATTRIBUTES)} or a dotted OID)")


@dataclass(frozen=True)
class SubjectRule:
    """Certificates of one issuing CA whose subject carries these attribute values.

    Parameters
    ----------
    issuer:
        The issuing CA: its subject as an RFC 4514 string, or ``sha256:<hex>`` — the
        fingerprint of the CA certificate the path went through.
    subject:
        ``(attribute, value)`` pairs; every one must be in the certificate's subject.

    Raises
    ------
    ValueError
        An unreadable issuer name, an unknown attribute or no attribute at all.
    """

    issuer: str
    subject: tuple[tuple[str, str], ...]
    _issuer_name: x509.Name | None = field(default=None, init=False, repr=False,
                                           compare=False)
    _oids: tuple[tuple[x509.ObjectIdentifier, str], ...] = field(default=(), init=False,
                                                                 repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.subject:
            raise ValueError("a subject rule needs at least one attribute (the CA alone "
                             "would bind every certificate it issued)")
        if not self.issuer.lower().startswith("sha256:"):
            object.__setattr__(self, "_issuer_name", x509.Name.from_rfc4514_string(self.issuer))
        object.__setattr__(self, "_oids", tuple((attribute_oid(name), value)
                                                for name, value in self.subject))

    def matches(self, leaf: x509.Certificate, issuer_fingerprint: str | None) -> bool:
        if self._issuer_name is not None:
            if leaf.issuer != self._issuer_name:
                return False
        elif issuer_fingerprint is None or \
                self.issuer.lower().removeprefix("sha256:") != issuer_fingerprint.lower():
            return False
        for oid, value in self._oids:
            if value not in (str(a.value) for a in leaf.subject.get_attributes_for_oid(oid)):
                return False
        return True


@dataclass(frozen=True)
class AgencyBinding:
    """How one agency's signing certificates are recognised."""

    fingerprints: frozenset[str] = frozenset()
    rules: tuple[SubjectRule, ...] = ()


@dataclass(frozen=True)
class BindingPolicy:
    """Signer → agency binding for a verifier (from the directory).

    Parameters
    ----------
    agencies:
        Agency code → its pinned certificates and subject rules.
    san_uri:
        Whether the ``urn:vn-gov:agency:<code>`` subjectAltName binds too.
    """

    agencies: Mapping[str, AgencyBinding] = field(default_factory=dict)
    san_uri: bool = True

    def binds(self, agency: str, leaf: x509.Certificate, fingerprint: str,
              issuer_fingerprint: str | None) -> str | None:
        """The rule that binds ``leaf`` to ``agency`` (for the report), or None."""
        binding = self.agencies.get(agency)
        if binding is not None:
            if fingerprint.lower() in binding.fingerprints:
                return "pinned certificate fingerprint (directory)"
            for rule in binding.rules:
                if rule.matches(leaf, issuer_fingerprint):
                    return f"subject rule of issuer {rule.issuer!r} (directory)"
        if self.san_uri and agency_code_of(leaf) == agency:
            return "subjectAltName URI urn:vn-gov:agency"
        return None
