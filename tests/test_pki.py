from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from docaxis.pki import KEY_TYPES, DevPKI, PKIError, agency_code_of, load_certificates


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_init_issue_and_key_types(tmp_path: Path, key_type: str) -> None:
    pki = DevPKI.init(tmp_path, key_type=key_type)  # type: ignore[arg-type]
    row = pki.issue_agency("000.00.11.H53", "Sở Tài chính Tây Ninh", tier="district",
                           key_type=key_type)  # type: ignore[arg-type]
    key, cert_path, chain = pki.agency_paths("000.00.11.H53")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "root" / "ca.key").stat().st_mode) == 0o600
    cert = load_certificates(cert_path)[0]
    # the code is bound in a dedicated field, not only the CN
    assert agency_code_of(cert) == "000.00.11.H53"
    assert f"{cert.serial_number:x}" == row.serial
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    public = cert.public_key()
    expected = ec.EllipticCurvePublicKey if key_type == "ec-p256" else rsa.RSAPublicKey
    assert isinstance(public, expected)
    if key_type == "rsa3072":
        assert public.key_size == 3072  # type: ignore[union-attr]
    chain_certs = load_certificates(chain)
    assert [c.subject for c in chain_certs][1:] == [
        load_certificates(pki.ca_path("district"))[0].subject,
        load_certificates(pki.root_path)[0].subject]


def test_revocation_lands_in_the_crl(tmp_path: Path) -> None:
    pki = DevPKI.init(tmp_path)
    row = pki.issue_agency("000.00.00.H41", "UBND tỉnh Nghệ An")
    crl_path = tmp_path / "crl" / "ca-province.crl.pem"
    assert x509.load_pem_x509_crl(crl_path.read_bytes()).get_revoked_certificate_by_serial_number(
        int(row.serial, 16)) is None
    pki.revoke("000.00.00.H41")
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(row.serial, 16)) is not None
    assert DevPKI.open(tmp_path).index[-1].revoked_at is not None


def test_refusals(tmp_path: Path) -> None:
    pki = DevPKI.init(tmp_path)
    with pytest.raises(PKIError, match="already holds"):
        DevPKI.init(tmp_path)
    with pytest.raises(PKIError) as caught:
        pki.issue_agency("28.22.H17", "x")
    assert caught.value.code == "EDX-ID-FORMAT"
    with pytest.raises(PKIError, match="tier"):
        pki.issue_agency("000.00.00.H41", "x", tier="village")
    with pytest.raises(PKIError, match="no unrevoked"):
        pki.revoke("nobody")


def test_keys_folder_ignores_everything_but_its_readme() -> None:
    ignore = (Path(__file__).resolve().parents[1] / "keys" / ".gitignore").read_text()
    assert "*" in ignore.split() and "!README.md" in ignore


def test_expired_issue_for_tests(tmp_path: Path) -> None:
    pki = DevPKI.init(tmp_path)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    pki.issue_agency("000.00.00.H41", "x", days=1, now=past)
    cert = load_certificates(pki.agency_paths("000.00.00.H41")[1])[0]
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
