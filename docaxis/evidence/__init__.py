"""Evidence for auditors: one document's proof in an ASiC-E container, checked offline.

Examples
--------
>>> data = export_container(store, "000.00.00.H43,2024/05/02,12/VPCP-TTĐT",  # doctest: +SKIP
...                         node_id="danang", signer=signer, verifier=verifier)
>>> verify_container(data, anchors).valid  # doctest: +SKIP
True
"""

from docaxis.evidence._asice import (
    MIMETYPE,
    ContainerReport,
    EvidenceError,
    export_container,
    verify_container,
    write_container,
)

__all__ = ["MIMETYPE", "ContainerReport", "EvidenceError", "export_container",
           "verify_container", "write_container"]
