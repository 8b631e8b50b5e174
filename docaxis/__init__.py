"""docaxis — an inter-agency electronic document exchange axis for edXML (QCVN 102:2016).

Layers, lowest first (a lower layer never imports a higher one):

* :mod:`docaxis.identifiers` — agency identifier codes (mã định danh);
* :mod:`docaxis.edxml` — the package format: model, hardened parser, writer, validator;
* :mod:`docaxis.cli` — the ``docaxis`` command.
"""

from docaxis._errors import DocaxisError

__all__ = ["DocaxisError", "__version__"]
__version__ = "0.1.0"
