"""Bounded work for any input: what a hostile package costs next to a valid one.

For each attack family a crafted input of about ``SIZE`` bytes goes through the whole
check a node applies — hardened parse (once), validation (interop profile) and strict
verification, the verifier run even when validation refuses (the CLI's ``verify`` does
not validate first) — next to a valid signed package of the same size (one scanned
attachment), in the same run. The figure is seconds per MB of input; the ratio is the
family's cost per MB over the valid package's. Target (issue #10): no family above 3×.

Families (SECURITY.md, "bounded cost"; issue #10 measured the first three before the
defences: 21,000 references 894 s, 16,000 bad ``To`` 263 s):

* many ``Reference URI=""`` in SignedInfo (each used to re-canonicalise the document);
* thousands of attributes / namespace declarations on ``ds:SignedInfo`` (C14N sorting);
* thousands of bad ``To`` entries (one finding each);
* many certificates in ``KeyInfo``; many transforms on a reference;
* many small elements (an element-dense body); many comments; long digit runs in an
  integer field; a huge ``Subject``;
* and, for the caps that refuse the families above early, the same attacks just under
  each cap (``max_children`` - 100 bad ``To``; 9,000 elements; 100 references; 19,000
  attributes), padded to the size.

A second table does the same for files read by **streaming** (``parse_file``: a package
over 8 MiB, as a node reads an upload; runs of base64 cut out of the skeleton), ~32 MB
each: text runs that end in a stray byte (cut, then put back), CDATA runs never closed,
many short CDATA sections, bare CDATA openers.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._packages import document_of_size
from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
from docaxis.edxml import ParseError, ParseLimits, parse, parse_file, validate
from docaxis.edxml._stream import CUT_AT
from docaxis.pki import DevPKI

SIZE = 2 * 1024 * 1024
#: the size of the files read by streaming
STREAM_SIZE = 32 * 1024 * 1024
_DS = "http://www.w3.org/2000/09/xmldsig#"


def _fill(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit.encode()))


def families(signed: bytes, size: int) -> dict[str, bytes]:
    """Hostile variants of ``signed`` (a small valid signed package), each ~``size`` bytes."""
    text = signed.decode()
    reference = re.search(r"<ds:Reference URI=\"\">.*?</ds:Reference>", text, re.S)
    assert reference is not None
    certificate = re.search(r"<ds:X509Certificate>.*?</ds:X509Certificate>", text, re.S)
    assert certificate is not None
    out: dict[str, bytes] = {}
    out["many Reference URI=\"\""] = text.replace(
        reference.group(0), _fill(reference.group(0), size), 1).encode()
    out["attributes on SignedInfo"] = text.replace(
        "<ds:SignedInfo>", "<ds:SignedInfo " + "".join(
            f'a{i}="{i}" ' for i in range(size // 12)) + ">", 1).encode()
    out["namespaces on SignedInfo"] = text.replace(
        "<ds:SignedInfo>", "<ds:SignedInfo " + "".join(
            f'xmlns:n{i}="urn:n:{i}" ' for i in range(size // 24)) + ">", 1).encode()
    bad_to = "<edXML:To><edXML:OrganId>28.22.H17</edXML:OrganId></edXML:To>"
    out["bad To entries"] = re.sub(r"(<edXML:To>)", lambda _m: _fill(bad_to, size) + "<edXML:To>",
                                   text, count=1).encode()
    out["certificates in KeyInfo"] = text.replace(
        certificate.group(0), _fill(certificate.group(0), size), 1).encode()
    transform = f'<ds:Transform Algorithm="{_DS}enveloped-signature"/>'
    out["transforms on a Reference"] = text.replace(
        "<ds:Transforms>", "<ds:Transforms>" + _fill(transform, size), 1).encode()
    out["element-dense body"] = text.replace(
        "</edXML:edXMLBody>", _fill("<edXML:X/>", size) + "</edXML:edXMLBody>", 1).encode()
    out["comments"] = text.replace("</edXML:Subject>", _fill("<!---->", size) + "</edXML:Subject>",
                                   1).encode()
    out["digits in an integer field"] = re.sub(
        r"<edXML:Priority>\d+</edXML:Priority>",
        lambda _m: "<edXML:Priority>" + "9" * size + "</edXML:Priority>", text, count=1).encode()
    out["huge Subject"] = text.replace("<edXML:Subject>", "<edXML:Subject>" + "x" * size,
                                       1).encode()
    # just under each cap, padded to the size with (digest-breaking) attachment base64
    limits = ParseLimits()
    recipients = limits.max_children - 100
    out[f"{recipients:,} bad To, under the children cap"] = _pad(re.sub(
        r"(<edXML:To>)", lambda _m: bad_to * recipients + "<edXML:To>", text, count=1), size)
    groups = (limits.max_elements - 500) // 1_000
    out[f"{groups * 1_000:,} elements, under the element cap"] = _pad(text.replace(
        "</edXML:edXMLBody>", ("<edXML:G>" + "<edXML:X/>" * 1_000 + "</edXML:G>") * groups
        + "</edXML:edXMLBody>", 1), size)
    out["100 references, under the signature cap"] = _pad(text.replace(
        reference.group(0), reference.group(0) * 100, 1), size)
    attributes = 2 * limits.max_elements - 1_000
    out[f"{attributes:,} attributes on SignedInfo, under the '=' cap"] = _pad(text.replace(
        "<ds:SignedInfo>", "<ds:SignedInfo " + "".join(
            f'a{i}="{i}" ' for i in range(attributes)) + ">", 1), size)
    return out


def streaming_families(signed: bytes, size: int) -> dict[str, bytes]:
    """Hostile variants of ``signed`` for the streaming path, each ~``size`` bytes of text
    in its ``Subject``: what a run's opener or its end can make the scanner do."""
    run = b"QUFB" * (CUT_AT // 4)
    subject = b"<edXML:Subject>"

    def filled(unit: bytes) -> bytes:
        return signed.replace(subject, subject + unit * max(1, size // len(unit)), 1)

    def under_the_cap(unit: bytes) -> bytes:
        """``unit`` repeated up to just under the structure cap, and the rest of the size
        in the attachment's base64 (cut out and streamed past, as a valid one's is)."""
        room = ParseLimits().max_structure_bytes - len(signed) - 1024
        crafted = signed.replace(subject, subject + unit * (room // len(unit)), 1)
        return _pad(crafted.decode("utf-8"), size)

    return {"text runs ending in a stray byte": filled(b">" + run + b"x"),
            "CDATA runs never closed": filled(b"<![CDATA[" + run + b"x]]>"),
            "short CDATA sections": filled(b"<![CDATA[QUFBQUFBQUFB]]>"),
            "bare CDATA openers": filled(b"<![CDATA["),
            "short CDATA sections under the structure cap": under_the_cap(
                b"<![CDATA[QUFBQUFBQUFB]]>"),
            "a long Subject under the structure cap": under_the_cap(b"QUFB QUFB ")}


def _streamed(signer: Signer, verifier: Verifier, folder: Path, quick: bool) -> list[str]:
    """The streaming table: each file parsed with ``parse_file`` (streamed whatever its
    size, as a node reads an upload over 8 MiB), validated and verified, next to a valid
    signed package read the same way. Each file is written before it is timed."""
    size = STREAM_SIZE // 4 if quick else STREAM_SIZE
    limits = ParseLimits(max_bytes=1 << 30, stream_above=0)
    path = folder / "streamed.edxml"

    def check() -> set[str]:
        try:
            parsed = parse_file(path, limits=limits)
        except ParseError as exc:
            return {exc.code}
        return validate(parsed).codes() | verifier.verify(parsed).codes()

    def written(data: bytes) -> Callable[[], set[str]]:
        path.write_bytes(data)
        return check

    valid = signer.sign(document_of_size(size), limits=limits)
    lines = _table(f"### hostile inputs read by streaming (`parse_file`, runs of base64 cut "
                   f"from {CUT_AT // 1024} KiB): parse + validate + verify, "
                   f"~{size / 2**20:.0f} MB each", valid, streaming_families(
                       signer.sign(document_of_size(4 * 1024)), size), written, 3)
    path.unlink()
    return ["", *lines]


def _table(title: str, valid: bytes, hostile: dict[str, bytes],
           prepare: Callable[[bytes], Callable[[], set[str]]], rounds: int) -> list[str]:
    """A table of what each hostile input costs per MB next to the valid package.

    Parameters
    ----------
    prepare:
        Given an input, the check to time for it (what a node does with it), which returns
        the codes it was refused with.
    """
    lines = [title, "", "| input | bytes | ms | s per MB | ratio to valid | refused with |",
             "|---|---:|---:|---:|---:|---|"]
    check = prepare(valid)
    assert not {c for c in check() if c.startswith(("EDX-XML", "EDX-SIG"))}
    base = _seconds(check, rounds)
    base_per_mb = base / (len(valid) / 2**20)
    lines.append(f"| valid signed package (baseline) | {len(valid):,} | {base * 1e3:,.1f} | "
                 f"{base_per_mb:.3f} | 1.00× | — |")
    worst = 0.0
    for name, data in hostile.items():
        check = prepare(data)
        seconds = _seconds(check, rounds)
        per_mb = seconds / (len(data) / 2**20)
        worst = max(worst, per_mb / base_per_mb)
        lines.append(f"| {name} | {len(data):,} | {seconds * 1e3:,.1f} | {per_mb:.3f} | "
                     f"{per_mb / base_per_mb:.2f}× | {', '.join(sorted(check())[:3])} |")
    return [*lines, "", f"worst family: {worst:.2f}× the valid package's cost per MB "
            "(target ≤ 3×)"]


def _pad(text: str, size: int) -> bytes:
    """``text`` grown to about ``size`` bytes inside its (first) attachment's base64."""
    room = max(0, size - len(text.encode())) // 4 * 4
    return text.replace("<edXML:ContentTransferEncoded>",
                        "<edXML:ContentTransferEncoded>" + "QUFB" * (room // 4), 1).encode()


def _check(verifier: Verifier) -> Callable[[bytes], set[str]]:
    """What a node does with a package (parse once, validate, verify), except that the
    verifier runs even when validation refuses: its cost is measured too. The codes."""
    def check(data: bytes) -> set[str]:
        try:
            parsed = parse(data)
        except ParseError as exc:
            return {exc.code}
        return validate(parsed).codes() | verifier.verify(parsed).codes()
    return check


def _seconds(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(quick: bool = False) -> str:
    folder = Path(tempfile.mkdtemp(prefix="docaxis-bench-hostile-"))
    pki = DevPKI.init(folder, key_type="rsa2048")
    pki.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central", key_type="rsa2048")
    key_path, _cert, chain = pki.agency_paths("000.00.00.G22")
    signer = Signer.from_files(key_path, chain)
    verifier = Verifier(VerificationPolicy(
        TrustStore.load([pki.root_path], crls=[pki.crl_folder])))
    check = _check(verifier)
    size = SIZE // 4 if quick else SIZE
    rounds = 3 if quick else 5
    valid = signer.sign(document_of_size(size))
    assert verifier.verify(valid).valid
    small = signer.sign(document_of_size(4 * 1024))
    lines = _table(f"### hostile inputs: parse + validate + verify, ~{size / 2**20:.1f} MB each",
                   valid, families(small, size), lambda data: lambda: check(data), rounds)
    lines += _streamed(signer, verifier, folder, quick)
    return "\n".join(lines) + "\n"
