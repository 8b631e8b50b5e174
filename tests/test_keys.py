"""Issue #10, item 9: real certificates bind to agencies by directory rules, and signing
keys load from encrypted PEM, PKCS#12 and PKCS#11 tokens (SoftHSM2)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from docaxis.directory import Agency, Directory, SignerRule
from docaxis.dsig import (
    KeyLoadError,
    Pkcs11Key,
    Signer,
    TrustStore,
    VerificationPolicy,
    Verifier,
    fingerprint,
    load_signing_key,
)
from docaxis.node import binding_policy
from docaxis.pki import DevPKI, load_certificates, load_private_key
from docaxis.relay import Rejection
from docaxis.transport import InMemoryBroker
from tests.relay_support import Network, build_network, network_pki
from tests.test_relay import FAST
from tests.test_transport import run, wait_until

SENDER, RECIPIENT = "000.00.00.H43", "000.00.00.H01"
ROOT = Path(__file__).resolve().parents[1]
SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("keys-pki"))


def _issue_without_san(pki: DevPKI, public: object, uid: str) -> list[x509.Certificate]:
    """A certificate as a real CA issues it: no docaxis SAN URI, the agency in the subject."""
    ca_key = load_private_key(pki.folder / "ca-province" / "ca.key")
    ca, root = load_certificates(pki.ca_path("province"))[0], load_certificates(pki.root_path)[0]
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                                     x509.NameAttribute(NameOID.USER_ID, uid),
                                     x509.NameAttribute(NameOID.COMMON_NAME, "UBND TP Đà Nẵng")]))
            .issuer_name(ca.subject).public_key(public)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                                  x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return [cert, ca, root]


def _softhsm_module() -> str | None:
    found = next((m for m in SOFTHSM_MODULES if Path(m).is_file()), None)
    if found is None or shutil.which("softhsm2-util") is None:
        if os.environ.get("DOCAXIS_REQUIRE_SOFTHSM"):
            pytest.fail("SoftHSM2 is required here (.ci/run installs softhsm2)")
        pytest.skip("SoftHSM2 is not installed (.ci/run installs softhsm2)")
    return found


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A fresh SoftHSM2 token 'docaxis' (PIN 1234) with an EC P-256 key 'signing'."""
    module = _softhsm_module()
    assert module is not None
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "docaxis",
                    "--pin", "1234", "--so-pin", "5678"], check=True, capture_output=True)
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    with pkcs11.lib(module).get_token(token_label="docaxis").open(user_pin="1234",
                                                                   rw=True) as session:
        params = session.create_domain_parameters(KeyType.EC, {
            Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        params.generate_keypair(store=True, label="signing")
    return module, "1234"


def _network_with_bindings(tmp_path: Path, pki: DevPKI, agency: Agency) -> Network:
    broker = InMemoryBroker(FAST)
    network = build_network(tmp_path, pki, lambda _node: broker)
    agencies = dict(network.directory.agencies)
    agencies[agency.code] = agency
    directory = Directory(dict(network.directory.nodes), agencies)
    store = TrustStore.load([pki.root_path], crls=[pki.crl_folder])
    verifier = Verifier(VerificationPolicy(store, bindings=binding_policy(directory)))
    for node in network.nodes.values():
        node.directory, node.verifier = directory, verifier
    return network


def _document(network: Network, signer: Signer, number: str) -> bytes:
    unsigned = network.document(SENDER, [RECIPIENT], number=number)
    from docaxis.edxml import parse

    parsed = parse(unsigned)
    parsed.locations.header.remove(parsed.signature.element)  # type: ignore[union-attr]
    from lxml import etree

    return signer.sign(etree.tostring(parsed.root.getroottree(), xml_declaration=True,
                                      encoding="UTF-8"))


def test_a_token_an_encrypted_pem_and_a_p12_sign_for_an_agency_bound_by_the_directory(
        tmp_path: Path, pki: DevPKI, token: tuple[str, str]) -> None:
    module, pin = token
    # 1. PKCS#11 (SoftHSM2): the key stays on the token; the certificate is pinned
    hsm_key = Pkcs11Key.open(module, token="docaxis", key_label="signing", pin=pin)
    hsm_chain = _issue_without_san(pki, hsm_key.public_key(), "MST:0400101394-HSM")
    # 2. an encrypted PEM, bound by a subject rule of its issuing CA
    pem_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_chain = _issue_without_san(pki, pem_key.public_key(), "MST:0400101394-PEM")
    pem_path = tmp_path / "agency-key.pem"
    pem_path.write_bytes(pem_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse")))
    chain_path = tmp_path / "agency-chain.pem"
    chain_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                                    for c in pem_chain))
    # 3. a PKCS#12 file, bound by a subject rule naming its CA by fingerprint
    p12_key = ec.generate_private_key(ec.SECP384R1())
    p12_chain = _issue_without_san(pki, p12_key.public_key(), "MST:0400101394-P12")
    p12_path = tmp_path / "agency.p12"
    p12_path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"agency", p12_key, p12_chain[0], p12_chain[1:],
        serialization.BestAvailableEncryption(b"p12 secret")))
    # an unbound certificate of the same CA, for the refusal
    stray_key = ec.generate_private_key(ec.SECP256R1())
    stray_chain = _issue_without_san(pki, stray_key.public_key(), "MST:9999999999")

    ca = load_certificates(pki.ca_path("province"))[0]
    agency = Agency(SENDER, "UBND TP Đà Nẵng", "danang", "province",
                    certificate_fingerprints=(fingerprint(hsm_chain[0]),),
                    signers=(SignerRule(ca.subject.rfc4514_string(),
                                        (("UID", "MST:0400101394-PEM"),)),
                             SignerRule(f"sha256:{fingerprint(ca)}",
                                        (("UID", "MST:0400101394-P12"),))))
    signers = {
        "pkcs11": Signer(hsm_key, hsm_chain),
        "pem": Signer.from_files(pem_path, chain_path, password=b"correct horse"),
        "p12": Signer.from_files(p12_path, password=b"p12 secret"),
    }

    async def scenario() -> None:
        network = _network_with_bindings(tmp_path, pki, agency)
        await network.start()
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        for number, (name, signer) in enumerate(signers.items(), start=71):
            document = _document(network, signer, str(number))
            report = danang.verifier.verify(document)
            assert report.valid, (name, report.failures)
            assert report.signer is not None and report.signer.agency_code == SENDER
            assert report.signer.binding and "directory" in report.signer.binding
            danang.submit(document, agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 3, 30)
        stray = _document(network, Signer(stray_key, stray_chain), "79")
        with pytest.raises(Rejection) as refused:
            danang.submit(stray, agency=SENDER)
        assert refused.value.code == "EDX-SIG-SIGNER"
        await network.stop()

    run(scenario())
    hsm_key.close()


def test_wrong_passwords_and_formats_are_one_line_errors(tmp_path: Path, pki: DevPKI) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = tmp_path / "key.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"right")))
    _key, cert, _chain = pki.agency_paths(SENDER)
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_signing_key(encrypted, password=b"wrong", certificates=cert)
    with pytest.raises(KeyLoadError, match="encrypted"):
        load_signing_key(encrypted, certificates=cert)
    junk = tmp_path / "junk.p12"
    junk.write_bytes(b"not a key at all")
    with pytest.raises(KeyLoadError):
        load_signing_key(junk)
    package = tmp_path / "p.edxml"
    from tests.dsig_support import package as make_package

    package.write_bytes(make_package())
    for args in (["--key", str(encrypted), "--cert", str(cert), "--password-env", "DX_PW"],
                 ["--key", str(junk)],
                 ["--pkcs11-module", "/nonexistent/lib.so", "--token", "t", "--key-label", "k",
                  "--cert", str(cert), "--pin-env", "DX_PW"]):
        result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "sign", str(package),
                                 *args], capture_output=True, timeout=60, check=False,
                                env={**os.environ, "DX_PW": "wrong"})
        output = (result.stdout + result.stderr).decode()
        assert result.returncode == 2, (args, output)
        assert "Traceback" not in output
        assert len([line for line in output.splitlines() if line.strip()]) == 1, output


def test_a_token_with_a_wrong_pin_is_a_one_line_error(token: tuple[str, str]) -> None:
    module, _pin = token
    with pytest.raises(KeyLoadError, match="wrong PIN"):
        Pkcs11Key.open(module, token="docaxis", key_label="signing", pin="0000")
    with pytest.raises(KeyLoadError, match="no single key pair"):
        Pkcs11Key.open(module, token="docaxis", key_label="absent", pin="1234")
