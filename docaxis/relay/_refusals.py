"""Refusals as signed edXML statuses (trạng thái 02 — từ chối tiếp nhận).

A node that refuses a package on its way tells the package's origin in its hop receipt
(signed with its node certificate); for a readable document, the receipt also carries an
edXML **status 02** answering the document, which the node signs with its node key *as
the agency that operates it* (the node certificate binds that agency too: ``docaxis keys
issue --node N --operator CODE``). Which ``From``: the operator agency — a status is an
agency's word in edXML, the node is not an agency, and signing as the sender or the
recipient would be a forgery. The sending agency's document system reads it like any
status, and ``docaxis verify`` accepts it (From = the certificate's agency).

At the origin, :func:`accepted_refusal_status` admits the status into the sender's inbox
only when it verifies under the origin's trust policy, answers the very document, and was
signed by the node whose signed receipt reports the refusal.
"""

from __future__ import annotations

import base64
import binascii
import logging

from docaxis.directory import Directory
from docaxis.dsig import StatementSigner, Verifier
from docaxis.edxml import (
    BuildError,
    DocumentPackage,
    Organization,
    ParseError,
    ParseLimits,
    StatusBuilder,
    StatusPackage,
    parse,
    write,
)

_log = logging.getLogger("docaxis.relay")

#: the status code of a refusal (từ chối tiếp nhận)
REFUSED = "02"
#: the longest description a refusal status carries (its reasons, with their codes)
DESCRIPTION_CHARS = 1500


def refusal_status(original: bytes, *, node_id: str, signer: StatementSigner | None,
                   directory: Directory, reasons: list[dict[str, object]],
                   limits: ParseLimits) -> str | None:
    """The signed status 02 answering a refused document (base64, for a hop receipt), or
    None: no operator agency in the node certificate, or the package is not a readable
    document (there is then nothing to answer; the receipt's reasons still say why)."""
    package_signer = signer.package_signer() if signer is not None else None
    if signer is None or package_signer is None or signer.operator is None:
        return None
    try:
        package = parse(original, limits=limits).package
    except ParseError:
        return None
    if not isinstance(package, DocumentPackage) or not package.document_id:
        return None
    said = "; ".join(f"{r.get('code', '')}: {r.get('message', '')}".strip(": ")
                     for r in reasons)
    description = f"Từ chối tiếp nhận tại nút {node_id} (refused at node {node_id}): {said}"
    agency = directory.agencies.get(signer.operator)
    try:
        status = (StatusBuilder()
                  .sender(Organization(organ_id=signer.operator,
                                       organ_name=agency.name if agency else signer.operator))
                  .responding_to(package)
                  .status(REFUSED, description[:DESCRIPTION_CHARS]).build())
        signed = package_signer.sign(write(status))
    except (BuildError, ParseError) as exc:  # a document too odd to answer: reasons only
        _log.warning("relay.refusal_status_not_made", extra={
            "code": "RELAY-REFUSAL-STATUS", "node": node_id,
            "document_id": package.document_id, "reason": str(exc)})
        return None
    return base64.b64encode(signed).decode()


def accepted_refusal_status(encoded: str, *, refusing_node: str, document_id: str | None,
                            sender: str, verifier: Verifier) -> tuple[bytes, str] | None:
    """The refusal status's bytes and its From, if it may go into ``sender``'s inbox:
    it verifies (strict profile, this node's trust), is a status 02 answering
    ``document_id`` of ``sender``, and its signer is ``refusing_node``'s certificate.
    None otherwise (logged)."""
    problem = None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        data, problem = b"", "not base64"
    if problem is None:
        report = verifier.verify(data)
        package = report.package.package if report.package is not None else None
        rf = package.header.response_for if isinstance(package, StatusPackage) else None
        if not report.valid:
            problem = "its signature does not verify: " + ", ".join(
                f.code for f in report.failures)
        elif not isinstance(package, StatusPackage) or package.status_code != REFUSED:
            problem = "it is not a status 02"
        elif rf is None or rf.document_id != document_id or rf.organ_id != sender:
            problem = "it answers another document"
        elif report.signer is None or report.signer.node != refusing_node:
            problem = f"it is not signed by node {refusing_node}'s certificate"
        else:
            return data, package.sender or ""
    _log.warning("relay.refusal_status_refused", extra={
        "code": "RELAY-REFUSAL-STATUS", "node": refusing_node, "document_id": document_id,
        "reason": problem})
    return None
