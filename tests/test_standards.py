"""The files in standards/ are exactly what the generator makes from the spec tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from docaxis.edxml import STATUS_CODES, standards_dir
from docaxis.edxml._schemagen import generated_files

STANDARDS = Path(__file__).resolve().parents[1] / "standards"


@pytest.mark.parametrize("name", sorted(generated_files()))
def test_committed_file_matches_the_generator(name: str) -> None:
    committed = (STANDARDS / name).read_text(encoding="utf-8")
    assert committed == generated_files()[name], (
        f"standards/{name} is stale: run python -m docaxis.edxml._schemagen standards"
    )


@pytest.mark.parametrize("name", [n for n in sorted(generated_files()) if n.endswith(".xsd")])
def test_schemas_compile(name: str) -> None:
    etree.XMLSchema(etree.parse(str(STANDARDS / name)))


def test_code_lists() -> None:
    data = json.loads((STANDARDS / "codelists.json").read_text(encoding="utf-8"))
    assert [c["code"] for c in data["status_codes"]] == list(STATUS_CODES)
    assert {c["code"] for c in data["status_codes"]} == {
        "01", "02", "03", "04", "05", "06", "13", "15", "16"}
    assert all(c["vi"] and c["en"] for c in data["status_codes"])
    assert [c["code"] for c in data["business_doc_types"]] == [0, 1, 2, 3]
    assert [c["code"] for c in data["priorities"]] == [0, 1, 2, 3, 4]
    assert [c["code"] for c in data["steering_types"]] == [0, 1, 2]
    assert [g["code"] for g in data["group_letters"]] == list("ABCDEFGHIJK")


def test_the_validator_loads_the_committed_schemas() -> None:
    folder = standards_dir()
    assert folder is not None
    assert (folder / "edxml-document.strict.xsd").read_text(encoding="utf-8") == \
        generated_files()["edxml-document.strict.xsd"]
