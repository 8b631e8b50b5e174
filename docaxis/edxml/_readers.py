"""Compiled element readers: one specialised Python function per :class:`NodeSpec`.

Building the model walks every element of a package, so at import time each spec table
is turned into a small function with its lookups unrolled — the technique ``attrs`` and
``cattrs`` use for ``__init__`` and structuring functions. The generated code is plain
and can be printed for review::

    python -m docaxis.edxml._readers Organization

Readers only *read*; they never judge (the validator does, with the same
:func:`~docaxis.edxml._values.convert`). Per child element:

* text is stripped and an empty element is absent (``None``), except attachment data,
  where an empty element is an empty file;
* typed leaves go through :func:`convert`; a value that cannot be read is ``None``;
* of a non-repeating element that occurs twice, the first is kept;
* repeated elements collect into tuples; wrapped lists read their item children;
* a node with no non-empty content is ``None`` (treated as absent, as real traffic
  writes empty ``ResponseFor`` blocks for "none").
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from docaxis.edxml import _model as m
from docaxis.edxml._namespaces import q
from docaxis.edxml._spec import (
    MODE_LEAF,
    MODE_MANY,
    MODE_NODE,
    MODE_TEXT,
    MODE_WRAPPED,
    SPECS,
    NodeSpec,
)
from docaxis.edxml._values import convert

Reader = Callable[[Any], Any]


def _leaf_lines(i: int, kind: str, target: str, source: str) -> list[str]:
    """Lines that read leaf field ``i`` from element ``source`` into ``target``."""
    if kind == "base64":
        return [f"{target} = ATTACHMENT({source}.text or '')"]
    lines = [f"t = {source}.text", "if t is not None:", "    t = t.strip()"]
    if kind in ("text", "agency", "status"):
        return [*lines, "    if t:", f"        {target} = t"]
    if kind == "int":  # fast path for plain non-negative integers
        return [*lines, "    if t.isascii() and t.isdigit() and len(t) <= 18:",
                f"        {target} = int(t)", "    elif t:",
                f"        {target} = CONVERT(F{i}, t)[0]"]
    return [*lines, "    if t:", f"        {target} = CONVERT(F{i}, t)[0]"]


def _source(spec: NodeSpec) -> tuple[str, dict[str, Any]]:
    """Python source of the reader for ``spec`` and the constants it refers to."""
    model_fields = {f.name for f in dataclasses.fields(spec.cls)}
    if model_fields != {f.attr for f in spec.fields}:
        raise TypeError(f"spec of {spec.cls.__name__} does not cover exactly its fields")
    consts: dict[str, Any] = {
        "CLS": spec.cls, "READERS": READERS, "NEW": object.__new__, "CONVERT": convert,
        "ATTACHMENT": m.AttachmentContent.from_base64,
    }
    index: dict[str, int] = {}
    lines = ["def read(el):"]
    for i, f in enumerate(spec.fields):
        consts[f"F{i}"] = f
        for name in (f.tag, *f.aliases):
            index[q(name)] = i
        lines.append(f"    v{i} = None" + (f"; l{i} = []" if f.repeated else ""))
    consts["INDEX"] = index
    lines += ["    index_get = INDEX.get", "    for child in el:",
              "        i = index_get(child.tag)", "        if i is None:",
              "            continue"]
    for i, f in enumerate(spec.fields):
        mode = spec.plan[q(f.tag)][1]
        lines.append(f"        {'if' if i == 0 else 'elif'} i == {i}:")
        body: list[str] = []
        if mode in (MODE_TEXT, MODE_LEAF):
            body += [f"if v{i} is None:"]
            body += ["    " + line for line in _leaf_lines(i, f.kind, f"v{i}", "child")]  # type: ignore[arg-type]
        elif mode == MODE_NODE:
            body += [f"if v{i} is None:", f"    v{i} = READERS[F{i}.kind](child)"]
        else:
            if f.is_leaf:
                read = ["x = None", *_leaf_lines(i, f.kind, "x", "{0}")]  # type: ignore[arg-type]
            else:
                read = [f"x = READERS[F{i}.kind]({{0}})"]
            read += ["if x is not None:", f"    l{i}.append(x)"]
            if mode == MODE_MANY:
                body += [line.format("child") for line in read]
            else:
                assert mode == MODE_WRAPPED
                consts[f"ITEM{i}"] = q(f.item or "")
                body += ["for item in child:", f"    if item.tag == ITEM{i}:"]
                body += ["        " + line.format("item") for line in read]
        lines += ["            " + line for line in body]
    for i, f in enumerate(spec.fields):
        if f.repeated:
            lines.append(f"    v{i} = tuple(l{i}) if l{i} else None")
    present = " and ".join(f"v{i} is None" for i in range(len(spec.fields)))
    lines += [f"    if {present}:", "        return None"]
    # Instantiate without the frozen dataclass __init__ (which sets each field through
    # object.__setattr__): write the slots directly; same object, a third of the cost.
    lines.append("    obj = NEW(CLS)")
    for i, f in enumerate(spec.fields):
        consts[f"SET{i}"] = getattr(spec.cls, f.attr).__set__
        lines.append(f"    SET{i}(obj, v{i})" if not f.repeated else f"    SET{i}(obj, v{i} or ())")
    lines.append("    return obj")
    return "\n".join(lines) + "\n", consts


def _compile(spec: NodeSpec) -> Reader:
    source, consts = _source(spec)
    namespace: dict[str, Any] = dict(consts)
    exec(compile(source, f"<edxml reader {spec.cls.__name__}>", "exec"), namespace)
    return namespace["read"]  # type: ignore[no-any-return]


#: Model class → compiled reader ``read(element) -> instance | None``.
READERS: dict[type, Reader] = {}
for _spec in SPECS.values():
    READERS[_spec.cls] = _compile(_spec)


def main(argv: list[str]) -> int:
    """Print the generated reader of each named model class."""
    for name in argv or [cls.__name__ for cls in SPECS]:
        spec = next(s for cls, s in SPECS.items() if cls.__name__ == name)
        print(_source(spec)[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
