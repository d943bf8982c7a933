"""Which sinks get token records as they are: a transport that encodes them, and the subclasses users derive from it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streamll.core.context import Execution
from streamll.core.events import TokenEvent
from streamll.core.records import TokenRecord
from streamll.core.serialization import decode_event, encode_event
from streamll.sinks.base import BaseSink
from streamll.streaming.bridge import TokenRun
from streamll.streaming.fields import PredictorState

STATE = PredictorState(name="QA.predict", adapter="chat", output_fields=["answer"], stream_fields=frozenset({"answer"}))
CALL = SimpleNamespace(state=STATE, parent_id="f" * 32, tags={}, extra=None, lanes={})


class RecordTransport(BaseSink):
    """A transport that encodes token records itself (as the broker transports do)."""

    encodes_records = True

    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[type] = []
        self.bodies: list[bytes] = []

    def encode(self, event: Any) -> bytes:
        self.encoded.append(type(event))
        return encode_event(event)

    async def write_batch(self, events: list[Any]) -> None:
        self.bodies.extend(events)


class Renamed(RecordTransport):
    """A user's subclass that changes nothing about encoding."""


def deliver_a_token(sink: RecordTransport) -> None:
    TokenRun(Execution(sinks=(sink,))).emit_token(CALL, "answer", " hi", 0, None, "lm")  # type: ignore[arg-type]
    assert sink.flush(5)
    sink.stop()


def test_a_transport_declaring_encodes_records_gets_the_records_themselves() -> None:
    sink = RecordTransport()
    deliver_a_token(sink)
    assert sink.encoded == [TokenRecord]
    assert [decode_event(body).token for body in sink.bodies] == [" hi"]  # type: ignore[attr-defined]


def test_a_subclass_of_such_a_transport_keeps_getting_records() -> None:
    sink = Renamed()
    deliver_a_token(sink)
    assert sink.encoded == [TokenRecord]


def test_a_subclass_overriding_encode_gets_events_unless_it_says_otherwise() -> None:
    class OwnEncode(RecordTransport):
        def encode(self, event: Any) -> bytes:
            return super().encode(event)

    class OwnEncodeOfRecords(OwnEncode):
        encodes_records = True

        def encode(self, event: Any) -> bytes:
            return super().encode(event)

    plain, declared = OwnEncode(), OwnEncodeOfRecords()
    deliver_a_token(plain)
    deliver_a_token(declared)
    assert plain.encoded == [TokenEvent]
    assert declared.encoded == [TokenRecord]
