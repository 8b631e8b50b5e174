"""Compiled element readers: one specialised Python function per :class:`NodeSpec`.

Reading the model is the parser's hot path (every element of every package a node
receives). A generic loop over the spec tables spends most of its time on table lookups;
so at import time each table is turned into a small function with the lookups unrolled —
the technique ``attrs`` and ``cattrs`` use for ``__init__`` and structuring functions.
The generated code is plain and can be printed for review::

    python -m docaxis.edxml._readers Organization

Semantics per child element (identical for every node):

* plain text leaves are stripped; empty means absent; over-long text → ``EDX-LENGTH``;
* other leaves go through ``reader.leaf`` (typed conversion + field findings);
* a second occurrence of a non-repeating element → ``EDX-DUPLICATE``;
* repeated elements collect into tuples; wrapped lists read their item children;
* a node with no non-empty content is ``None`` (absent); otherwise each missing required
  child → ``EDX-REQUIRED`` and each empty one → ``EDX-REQUIRED-EMPTY``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

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

Reader = Callable[[Any, Any], Any]

#: Agency codes already seen to be valid (filled by the parser's leaf reader).
AGENCY_OK: dict[str, bool] = {}


def _source(spec: NodeSpec) -> tuple[str, dict[str, Any]]:
    """Python source of the reader for ``spec`` and the constants it refers to."""
    consts: dict[str, Any] = {
        "CLS": spec.cls, "READERS": READERS, "NEW": object.__new__, "AGENCY_OK": AGENCY_OK,
    }
    model_fields = {f.name for f in dataclasses.fields(spec.cls)}
    if model_fields != {f.attr for f in spec.fields}:
        raise TypeError(f"spec of {spec.cls.__name__} does not cover exactly its fields")
    index: dict[str, int] = {}
    lines = ["def read(reader, el):"]
    for i, f in enumerate(spec.fields):
        consts[f"F{i}"] = f
        for name in (f.tag, *f.aliases):
            index[q(name)] = i
        lines.append(f"    v{i} = None; e{i} = None" + (f"; l{i} = []" if f.repeated else ""))
    consts["INDEX"] = index
    lines += ["    index_get = INDEX.get", "    for child in el:",
              "        i = index_get(child.tag)", "        if i is None:",
              "            continue"]
    for i, f in enumerate(spec.fields):
        mode = spec.plan[q(f.tag)][1]
        lines.append(f"        {'if' if i == 0 else 'elif'} i == {i}:")
        body: list[str] = []
        if mode in (MODE_TEXT, MODE_LEAF, MODE_NODE):
            body += [f"if e{i} is not None:", f"    reader.duplicate(F{i}, el, child)",
                     "    continue", f"e{i} = child"]
        if mode == MODE_TEXT:
            body += ["t = child.text", "if t is not None:", "    t = t.strip()", "    if t:"]
            if f.max_length is not None:
                body += [f"        if len(t) > {f.max_length}:",
                         f"            reader.too_long(F{i}, child, t)"]
            body += [f"        v{i} = t"]
        elif mode == MODE_LEAF and f.kind == "int":
            # fast path for plain non-negative integers; anything else goes to reader.leaf
            body += ["t = child.text", "if t is not None:", "    t = t.strip()",
                     "    if t.isdigit() and t.isascii():", f"        v{i} = int(t)"]
            if f.values is not None:
                consts[f"VALUES{i}"] = f.values
                body += [f"        if v{i} not in VALUES{i}:",
                         f"            v{i} = reader.leaf(F{i}, child)"]
            body += ["    elif t:", f"        v{i} = reader.leaf(F{i}, child)"]
        elif mode == MODE_LEAF and f.kind == "agency":
            # agency codes repeat across traffic: the memo answers most of them
            body += ["t = child.text", "if t is not None:", "    t = t.strip()", "    if t:",
                     f"        v{i} = t", "        if AGENCY_OK.get(t) is not True:",
                     f"            reader.leaf(F{i}, child)"]
        elif mode == MODE_LEAF:
            body += [f"v{i} = reader.leaf(F{i}, child)"]
        elif mode == MODE_NODE:
            body += [f"v{i} = READERS[F{i}.kind](reader, child)"]
        else:
            read_one = (f"reader.leaf(F{i}, {{0}})" if f.is_leaf
                        else f"READERS[F{i}.kind](reader, {{0}})")
            if mode == MODE_MANY:
                body += [f"if e{i} is None:", f"    e{i} = child",
                         f"x = {read_one.format('child')}", "if x is not None:",
                         f"    l{i}.append(x)"]
            else:
                assert mode == MODE_WRAPPED
                consts[f"ITEM{i}"] = q(f.item or "")
                body += [f"if e{i} is None:", f"    e{i} = child", "for item in child:",
                         f"    if item.tag == ITEM{i}:",
                         f"        x = {read_one.format('item')}",
                         "        if x is not None:", f"            l{i}.append(x)"]
        lines += ["            " + line for line in body]
    for i, f in enumerate(spec.fields):
        if f.repeated:
            lines.append(f"    v{i} = tuple(l{i}) if l{i} else None")
    present = " and ".join(f"v{i} is None" for i in range(len(spec.fields)))
    lines += [f"    if {present}:", "        return None"]
    for i, f in enumerate(spec.fields):
        if f.required:
            lines += [f"    if v{i} is None:", f"        reader.required(F{i}, el, e{i})"]
    # Instantiate without the frozen dataclass __init__ (which sets each field through
    # object.__setattr__): write the slots directly; same result, a third of the cost.
    lines.append("    obj = NEW(CLS)")
    for i, f in enumerate(spec.fields):
        consts[f"SET{i}"] = getattr(spec.cls, f.attr).__set__
        lines.append(f"    SET{i}(obj, v{i})" if not f.repeated else f"    SET{i}(obj, v{i} or ())")
    lines.append("    return obj")
    return "\n".join(lines) + "\n", consts


def _compile(spec: NodeSpec) -> Reader:
    source, consts = _source(spec)
    namespace: dict[str, Any] = dict(consts)
    code = compile(source, f"<edxml reader {spec.cls.__name__}>", "exec")
    exec(code, namespace)
    return namespace["read"]  # type: ignore[no-any-return]


#: Model class → compiled reader ``read(reader, element) -> instance | None``.
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
