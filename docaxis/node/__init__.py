"""The composition root: a node from its node.toml (``docaxis serve``), worker processes,
the directory's signer bindings, and the four-tier demo network. Nothing below imports
this package (ARCHITECTURE.md, layers)."""

from docaxis.node._bindings import binding_policy
from docaxis.node._check import Check, check_node
from docaxis.node._run import (
    DEFAULT_AMQP,
    ConfigError,
    NodeConfig,
    demo,
    import_directory,
    load_directory,
    open_node,
    open_store,
    serve,
)

__all__ = [
    "DEFAULT_AMQP",
    "Check",
    "ConfigError",
    "NodeConfig",
    "binding_policy",
    "check_node",
    "demo",
    "import_directory",
    "load_directory",
    "open_node",
    "open_store",
    "serve",
]
