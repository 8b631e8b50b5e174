"""Agency identifier codes (mã định danh): parse, format, level, parent, group meaning.

Examples
--------
>>> from docaxis.identifiers import AgencyCode
>>> str(AgencyCode.parse("012.05.11.H53").parent)
'000.05.11.H53'
"""

from docaxis.identifiers._agency_code import (
    GROUP_LETTERS,
    XSD_PATTERN,
    AgencyCode,
    InvalidAgencyCode,
)
from docaxis.identifiers._text import fold_text

__all__ = ["GROUP_LETTERS", "XSD_PATTERN", "AgencyCode", "InvalidAgencyCode", "fold_text"]
