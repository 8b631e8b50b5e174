"""Fuzz target over parse → validate → verify (issue #10, item 4).

Every input — a signed package mutated byte by byte, spliced with hostile constructs,
re-encoded — yields either a result or one of the documented errors, each with a code
listed in ``standards/README.md``; nothing raises anything else. The suite runs a bounded
number of examples (``DOCAXIS_FUZZ_EXAMPLES``, default 150); docs/signatures.md records a
longer run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
from docaxis.edxml import ParseError, parse, validate
from docaxis.pki import DevPKI
from tests.dsig_support import G22, H41, package

README = Path(__file__).resolve().parents[1] / "standards" / "README.md"
DOCUMENTED = set(re.findall(r"`((?:EDX|RELAY|API)-[A-Z0-9-]+)`", README.read_text("utf-8")))
EXAMPLES = int(os.environ.get("DOCAXIS_FUZZ_EXAMPLES", "150"))

#: constructs a hostile sender or relay splices in
SNIPPETS = [
    b"<!---->", b"<?pi x?>", b'xmlns:x="u" ', b"<![CDATA[x]]>", b"&amp;", b"&#0;", b"&#x1F600;",
    b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>", b"&e;", b"\x00", b"\xff\xfe",
    b"<edXML:MessageHeader/>", b"<edXML:TraceHeaderList/>", b"<edXML:Bussiness/>",
    b"<edXML:AttachmentEncoded/>", b"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'/>",
    b'<ds:Reference URI="">', b'<ds:Reference URI="#x"/>', b"\xc2\xb2", b"\xe2\x91\xa0",
    b"9" * 5000, b"<edXML:To><edXML:OrganId>x</edXML:OrganId></edXML:To>", b"</", b">", b'"',
    b"<a b='1' b='2'/>", b"\r\n", b"\xef\xbb\xbf", b"<x:y/>", b'xmlns=""',
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Verifier]:
    pki = DevPKI.init(tmp_path_factory.mktemp("fuzz-pki"), key_type="ec-p256")
    pki.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central", key_type="ec-p256")
    pki.issue_agency("000.00.00.H41", "UBND tỉnh Nghệ An", tier="province", key_type="ec-p256")
    key, _cert, chain = pki.agency_paths("000.00.00.G22")
    signed = Signer.from_files(key, chain).sign(package(G22))
    assert H41.organ_id
    verifier = Verifier(VerificationPolicy(TrustStore.load([pki.root_path],
                                                           crls=[pki.crl_folder])))
    return signed, verifier


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["snippet", "delete", "byte", "duplicate"]))
        if action == "snippet":
            data[at:at] = draw(st.sampled_from(SNIPPETS))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif action == "byte":
            data[at:at + 1] = bytes([draw(st.integers(0, 255))])
        else:
            end = min(len(data), at + draw(st.integers(1, 400)))
            data[end:end] = data[at:end]
    if draw(st.integers(0, 19)) == 0:
        data = bytearray(bytes(data).decode("utf-8", "replace").encode(
            draw(st.sampled_from(["utf-16-le", "utf-32-be", "utf-32-le"]))))
    return bytes(data)


def _codes_of(data: bytes, verifier: Verifier) -> set[str]:
    codes: set[str] = set()
    try:
        parsed = parse(data)
    except ParseError as exc:
        codes.add(exc.code)
    else:
        model = parsed.package  # reading the model never raises
        assert model is not None
    codes |= validate(data).codes()
    codes |= validate(data, profile="strict").codes()
    codes |= verifier.verify(data).codes()
    return codes


def test_fuzz_parse_validate_verify_yield_only_documented_errors(
        setup: tuple[bytes, Verifier]) -> None:
    signed, verifier = setup

    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=mutated(signed))
    def check(data: bytes) -> None:
        codes = _codes_of(data, verifier)
        undocumented = codes - DOCUMENTED
        assert not undocumented, f"undocumented codes {undocumented}"
        seen["#inputs"] = seen.get("#inputs", 0) + 1
        for code in codes or {"(none: accepted)"}:
            seen[code] = seen.get(code, 0) + 1

    check()
    if "DOCAXIS_FUZZ_EXAMPLES" in os.environ:  # a long run says what it met
        inputs = seen.pop("#inputs", 0)
        print(f"\nfuzz: {inputs} inputs; inputs per code: "
              + ", ".join(f"{code} {n}" for code, n in sorted(seen.items())))


def test_every_code_the_layers_raise_is_documented() -> None:
    source = "\n".join(p.read_text("utf-8") for p in
                       (Path(__file__).resolve().parents[1] / "docaxis").rglob("*.py"))
    raised = set(re.findall(r'"((?:EDX|RELAY|API)-[A-Z0-9]+(?:-[A-Z0-9]+)*)"', source))
    raised -= {"EDX-ERROR", "EDX-XML", "EDX-BUILD", "EDX-SIG-SIGN",  # base classes, signing
               "RELAY-REJECTED"}
    assert raised <= DOCUMENTED, sorted(raised - DOCUMENTED)
