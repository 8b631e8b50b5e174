"""The relay: the hop pipeline every node runs, hop receipts, dedup, fan-out."""

from docaxis.relay._node import HopReceipt, Rejection, RelayNode

__all__ = ["HopReceipt", "Rejection", "RelayNode"]
