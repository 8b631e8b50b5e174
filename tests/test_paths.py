"""Complete path validation (issue #10, item 8): every rule refuses a path that breaks it.

Each case builds its own small hierarchy (root → [intermediate] → agency leaf), signs a
package with the leaf and verifies it against the root alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
from docaxis.dsig._names import agency_uri
from tests.dsig_support import package

NOW = dt.datetime.now(dt.UTC)
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Tweak = Callable[[x509.CertificateBuilder], x509.CertificateBuilder]


def _name(cn: str, org: str = "docaxis test") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                         decipher_only=False)


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=True,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)


def _cert(subject: x509.Name, key: Key, issuer: x509.Name, issuer_key: Key, *, ca: bool,
          path_length: int | None = None, tweak: Tweak | None = None,
          leaf_ca: bool = False) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=1))
               .not_valid_after(NOW + dt.timedelta(days=30))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), critical=False))
    if ca:
        builder = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length),
                                         critical=True)
                   .add_extension(_ca_usage(), critical=True))
    else:
        builder = (builder.add_extension(x509.BasicConstraints(ca=leaf_ca, path_length=None),
                                         critical=True)
                   .add_extension(_leaf_usage(), critical=True)
                   .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                       agency_uri("000.00.00.G22"))]), critical=False))
    if tweak is not None:
        builder = tweak(builder)
    return builder.sign(issuer_key, hashes.SHA256())


def _verify(*, leaf_key: Key | None = None, leaf_tweak: Tweak | None = None,
            leaf_ca: bool = False, intermediates: int = 1, path_length: int | None = None,
            intermediate_key: Key | None = None, intermediate_tweak: Tweak | None = None,
            ) -> set[str]:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("Test Root")
    root = _cert(root_name, root_key, root_name, root_key, ca=True)
    chain: list[x509.Certificate] = []
    issuer_name, issuer_key = root_name, root_key
    for index in range(intermediates):
        key = (intermediate_key if intermediate_key is not None and index == intermediates - 1
               else ec.generate_private_key(ec.SECP256R1()))
        name = _name(f"Test CA {index}")
        chain.insert(0, _cert(name, key, issuer_name, issuer_key, ca=True,
                              path_length=path_length if index == 0 else None,
                              tweak=intermediate_tweak))
        issuer_name, issuer_key = name, key
    leaf_key = leaf_key or ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(_name("Văn phòng Chính phủ", "VPCP"), leaf_key, issuer_name, issuer_key,
                 ca=False, tweak=leaf_tweak, leaf_ca=leaf_ca)
    signed = Signer(leaf_key, [leaf, *chain]).sign(package())
    verifier = Verifier(VerificationPolicy(TrustStore([root]), require_revocation=False))
    return verifier.verify(signed).codes()


def test_a_well_formed_path_verifies() -> None:
    assert _verify() == set()
    assert _verify(intermediates=2, path_length=1) == set()


def test_path_length_is_enforced() -> None:
    assert "EDX-SIG-CHAIN" in _verify(intermediates=2, path_length=0)


def test_a_ca_leaf_is_refused() -> None:
    assert "EDX-SIG-CHAIN" in _verify(leaf_ca=True)


def test_an_unknown_critical_extension_is_refused() -> None:
    def critical(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
        return builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), critical=True)

    assert "EDX-SIG-CHAIN" in _verify(leaf_tweak=critical)
    assert "EDX-SIG-CHAIN" in _verify(intermediate_tweak=critical)


def test_name_constraints_are_enforced() -> None:
    def constrained(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
        return builder.add_extension(x509.NameConstraints(
            permitted_subtrees=[x509.UniformResourceIdentifier("example.org")],
            excluded_subtrees=None), critical=True)

    assert "EDX-SIG-CHAIN" in _verify(intermediate_tweak=constrained)


def test_a_weak_intermediate_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert "EDX-SIG-CHAIN" in _verify(intermediate_key=weak)


def test_an_unlisted_curve_is_refused() -> None:
    assert "EDX-SIG-CHAIN" in _verify(leaf_key=ec.generate_private_key(ec.SECP256K1()))


@pytest.mark.parametrize(("usages", "ok"), [
    ([x509.ExtendedKeyUsageOID.SERVER_AUTH], False),
    ([x509.ExtendedKeyUsageOID.EMAIL_PROTECTION], True),
    ([x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")], True),
])
def test_the_extended_key_usage_policy(usages: list[x509.ObjectIdentifier], ok: bool) -> None:
    def eku(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
        return builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)

    codes = _verify(leaf_tweak=eku)
    assert (codes == set()) is ok, codes
