"""The composition root: a node from its node.toml (``docaxis serve``), worker processes,
the directory's signer bindings, operators' actions, and the four-tier demo network.
Nothing below imports this package (ARCHITECTURE.md, layers)."""

from docaxis.node._bindings import binding_policy
from docaxis.node._check import Check, check_node
from docaxis.node._operations import (
    NotServedHere,
    describe_parked,
    issue_credential,
    issue_system,
    record_parked_decision,
)
from docaxis.node._run import (
    DEFAULT_AMQP,
    ConfigError,
    NodeConfig,
    demo,
    import_directory,
    load_directory,
    node_verifier,
    open_node,
    open_store,
    run_loop,
    serve,
)

__all__ = [
    "DEFAULT_AMQP",
    "Check",
    "ConfigError",
    "NodeConfig",
    "NotServedHere",
    "binding_policy",
    "check_node",
    "demo",
    "describe_parked",
    "import_directory",
    "issue_credential",
    "issue_system",
    "load_directory",
    "node_verifier",
    "open_node",
    "open_store",
    "record_parked_decision",
    "run_loop",
    "serve",
]
