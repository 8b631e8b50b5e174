"""The relay: the hop pipeline every node runs, hop receipts, dedup, fan-out."""

from docaxis.relay._metrics import share_between_processes
from docaxis.relay._node import RelayNode
from docaxis.relay._pipeline import Pipeline, Plan, Rejection
from docaxis.relay._receipts import HopEvidence, HopReceipt
from docaxis.relay._stamper import LogStamper
from docaxis.relay._transfers import transfer_lane
from docaxis.relay._uplink import VxpUplink

__all__ = ["HopEvidence", "HopReceipt", "LogStamper", "Pipeline", "Plan", "Rejection", "RelayNode",
           "VxpUplink", "share_between_processes", "transfer_lane"]
