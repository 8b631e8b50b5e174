"""Transport between nodes: one :class:`Broker` API, RabbitMQ and in-process brokers."""

from docaxis.transport._broker import (
    ATTEMPT_HEADER,
    PARKED_REASON_HEADER,
    Broker,
    Consumer,
    Handler,
    Message,
    Reject,
    Retry,
    RetryPolicy,
    TransportError,
    dead_letter_queue_name,
    delay_queue_name,
    exchange_name,
    inbound_queue_name,
)
from docaxis.transport._memory import InMemoryBroker
from docaxis.transport._rabbitmq import HEARTBEAT, RabbitMQBroker

__all__ = [
    "ATTEMPT_HEADER",
    "HEARTBEAT",
    "PARKED_REASON_HEADER",
    "Broker",
    "Consumer",
    "Handler",
    "InMemoryBroker",
    "Message",
    "RabbitMQBroker",
    "Reject",
    "Retry",
    "RetryPolicy",
    "TransportError",
    "dead_letter_queue_name",
    "delay_queue_name",
    "exchange_name",
    "inbound_queue_name",
]
