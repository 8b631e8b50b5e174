"""The relay: the hop pipeline every node runs, hop receipts, dedup, fan-out."""

from docaxis.relay._node import Rejection, RelayNode
from docaxis.relay._receipts import HopEvidence, HopReceipt

__all__ = ["HopEvidence", "HopReceipt", "Rejection", "RelayNode"]
