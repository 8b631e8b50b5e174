from __future__ import annotations

from pathlib import Path

import pytest

from docaxis.directory import Directory, DirectoryError, UnknownDestination

FOUR_TIERS = """
[node.central]
tier = "central"
[node.hanoi]
tier = "province"
parent = "central"
[node.danang]
tier = "province"
parent = "central"
[node.hoavang]
tier = "district"
parent = "danang"
[node.hoatien]
tier = "commune"
parent = "hoavang"
[node.hoason]
tier = "commune"
parent = "hoavang"

[[agency]]
code = "000.00.00.G22"
name = "Văn phòng Chính phủ"
node = "central"
[[agency]]
code = "000.00.00.H01"
name = "UBND TP Hà Nội"
node = "hanoi"
[[agency]]
code = "000.00.00.H43"
name = "UBND TP Đà Nẵng"
node = "danang"
[[agency]]
code = "000.00.05.H43"
name = "UBND huyện Hòa Vang"
node = "hoavang"
[[agency]]
code = "000.01.05.H43"
name = "UBND xã Hòa Tiến"
node = "hoatien"
[[agency]]
code = "000.02.05.H43"
name = "UBND xã Hòa Sơn"
node = "hoason"
"""


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    path = tmp_path / "network.toml"
    path.write_text(FOUR_TIERS, encoding="utf-8")
    return Directory.from_toml(path)


def test_routes_go_up_then_down(directory: Directory) -> None:
    assert directory.hops("hoatien", "000.00.00.H01") == [
        "hoatien", "hoavang", "danang", "central", "hanoi"]
    assert directory.hops("hanoi", "000.01.05.H43") == [
        "hanoi", "central", "danang", "hoavang", "hoatien"]
    assert directory.hops("hoatien", "000.02.05.H43") == ["hoatien", "hoavang", "hoason"]
    route = directory.route("central", "000.02.05.H43")
    assert (route.kind, route.node) == ("down", "danang")
    assert directory.route("danang", "000.00.00.H43").kind == "local"


def test_a_three_tier_variant_needs_no_code_change(directory: Directory) -> None:
    """Abolish the district tier: communes hang directly under the province."""
    text = FOUR_TIERS.replace('parent = "hoavang"', 'parent = "danang"')
    three = Directory.from_mapping(__import__("tomllib").loads(text))
    assert three.hops("hoatien", "000.00.00.H01") == ["hoatien", "danang", "central", "hanoi"]


def test_unknown_destination(directory: Directory) -> None:
    with pytest.raises(UnknownDestination) as caught:
        directory.route("hanoi", "000.00.00.H99")
    assert caught.value.code == "RELAY-UNKNOWN-DESTINATION"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('parent = "central"', 'parent = "nowhere"', 1), "unknown parent"),
        (lambda t: t + '\n[[agency]]\ncode = "28.22.H17"\nnode = "hanoi"\n', "found 3"),
        (lambda t: t + '\n[[agency]]\ncode = "000.00.00.H02"\nnode = "mars"\n', "unknown node"),
        (lambda t: t + '\n[[agency]]\ncode = "000.00.00.G22"\nnode = "hanoi"\n', "twice"),
        (lambda t: t.replace('[node.central]\ntier = "central"',
                             '[node.central]\ntier = "central"\nparent = "hanoi"'), "cycle"),
    ],
)
def test_inconsistent_directories_are_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    import tomllib

    with pytest.raises(DirectoryError, match=message):
        Directory.from_mapping(tomllib.loads(change(FOUR_TIERS)))
