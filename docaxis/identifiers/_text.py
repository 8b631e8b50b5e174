"""Text as a clerk types it: Vietnamese with or without its diacritics."""

from __future__ import annotations

import unicodedata

_D = str.maketrans({"đ": "d", "Đ": "d"})


def fold_text(text: str) -> str:
    """``text`` without diacritics, lower-case, without spaces: the form in which a
    document's number and notation (số, ký hiệu) are compared, so that ``12/VPCP-TTĐT``,
    ``12/vpcp-ttdt`` and ``12 / VPCP-TTĐT`` are one.

    Examples
    --------
    >>> fold_text("12/VPCP-TTĐT")
    '12/vpcp-ttdt'
    >>> fold_text("Sở Tài chính")
    'sotaichinh'
    """
    decomposed = unicodedata.normalize("NFD", text.translate(_D))
    return "".join(c for c in decomposed
                   if not unicodedata.combining(c) and not c.isspace()).lower()
