"""Parse + validate throughput: docaxis next to lxml+XMLSchema and xmlschema.

Candidates, on the same package bytes, in the same run:

* ``docaxis validate`` — hardened parse, typed model, XSD (interop profile) and rules;
* ``lxml parse + XMLSchema`` — baseline (a): ``etree.fromstring`` + the same interop XSD;
* ``xmlschema`` — baseline (b): ``xmlschema.XMLSchema(...).is_valid`` on the same XSD.

Targets (issue #2): docaxis ≥ 0.5× of (a) and faster than (b).
"""

from __future__ import annotations

import xmlschema
from lxml import etree

from benchmarks._harness import compare, table
from benchmarks._packages import document_of_size
from docaxis.edxml import schema_for, standards_dir, validate

SIZES = {"small (~5 KB)": 5 * 1024, "large (~2.5 MB)": int(2.5 * 1024 * 1024)}


def run(quick: bool = False) -> str:
    folder = standards_dir()
    assert folder is not None
    xsd_path = folder / "edxml-document.interop.xsd"
    lxml_schema = schema_for("document", "interop")
    pure_schema = xmlschema.XMLSchema(str(xsd_path))
    out = []
    for label, size in SIZES.items():
        data = document_of_size(size)
        report = validate(data)
        assert report.valid, report.findings
        assert lxml_schema.validate(etree.fromstring(data))

        def ours(data: bytes = data) -> object:
            return validate(data)

        def lxml_only(data: bytes = data) -> object:
            return lxml_schema.validate(etree.fromstring(data))

        def pure(data: bytes = data) -> object:
            return pure_schema.is_valid(data.decode("utf-8"))

        candidates = {"lxml parse + XMLSchema (a, baseline)": lxml_only,
                      "docaxis validate (interop)": ours,
                      "xmlschema is_valid (b)": pure}
        rounds = 3 if quick else 7
        results = compare(candidates, rounds=rounds, round_seconds=0.1 if quick else 0.25)
        out.append(table(f"parse + validate, {label}: {len(data):,} bytes", results,
                         "lxml parse + XMLSchema (a, baseline)"))
    return "\n".join(out)
