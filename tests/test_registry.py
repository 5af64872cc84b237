"""The correlation registry: routing, the early-event buffer, duplicates and late events.

Real parts throughout: real events decoded from bytes, real handles and calls of an
unopened session (no I/O happens), and a controllable clock.
"""

from __future__ import annotations

import msgspec
import pytest

from signalwire_calls import CallSession, HandleStatus
from signalwire_calls._codec import decode_event
from signalwire_calls._registry import Registry
from signalwire_calls.call import Call
from signalwire_calls.handles import HISTORY_LIMIT, PlayHandle, TranscribeHandle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def play_event(control_id: str, state: str, call_id: str = "call-1", ts: float = 1.0) -> bytes:
    return msgspec.json.encode(
        {
            "event_type": "calling.call.play",
            "timestamp": ts,
            "params": {"call_id": call_id, "control_id": control_id, "state": state},
        }
    )


def state_event(call_id: str, state: str, reason: str | None = None) -> bytes:
    params = {"call_id": call_id, "node_id": "n", "call_state": state, "end_reason": reason}
    return msgspec.json.encode({"event_type": "calling.call.state", "params": params})


@pytest.fixture
def setup() -> tuple[CallSession, Registry, Clock]:
    clock = Clock()
    session = CallSession(space="http://127.0.0.1:9", project="p", token="t")
    registry = Registry(buffer_ttl=30.0, buffer_max=3, clock=clock)
    session._registry = registry
    return session, registry, clock


def test_routes_to_registered_handle(setup: tuple[CallSession, Registry, Clock]) -> None:
    session, registry, _ = setup
    call = Call(session, "call-1")
    handle = PlayHandle("op-1", call)
    call._ops["op-1"] = handle
    registry.add_operation(handle)
    registry.deliver(decode_event(play_event("op-1", "playing")))
    assert handle.status is HandleStatus.RUNNING
    registry.deliver(decode_event(play_event("op-1", "finished", ts=2.0)))
    assert handle.done
    assert handle.result().state == "finished"
    assert registry.operations == {}
    assert registry.stats().routed == 2


def test_early_event_is_replayed_on_registration(
    setup: tuple[CallSession, Registry, Clock],
) -> None:
    session, registry, _ = setup
    registry.deliver(decode_event(play_event("op-2", "finished")))
    assert registry.stats().buffered_now == 1
    call = Call(session, "call-1")
    handle = PlayHandle("op-2", call)
    call._ops["op-2"] = handle
    registry.add_operation(handle)
    assert handle.status is HandleStatus.FINISHED
    stats = registry.stats()
    assert (stats.buffered, stats.replayed, stats.buffered_now) == (1, 1, 0)


def test_buffer_is_time_limited_and_bounded(setup: tuple[CallSession, Registry, Clock]) -> None:
    _, registry, clock = setup
    for i in range(5):  # buffer_max=3: two are refused and counted
        registry.deliver(decode_event(play_event(f"x-{i}", "playing")))
    stats = registry.stats()
    assert (stats.buffered, stats.expired, stats.buffered_now) == (3, 2, 3)
    clock.now += 31.0
    stats = registry.stats()
    assert stats.buffered_now == 0
    assert stats.expired == 5


def test_duplicates_and_late_events_are_dropped(
    setup: tuple[CallSession, Registry, Clock],
) -> None:
    session, registry, _ = setup
    call = Call(session, "call-1")
    handle = PlayHandle("op-3", call)
    call._ops["op-3"] = handle
    registry.add_operation(handle)
    playing = play_event("op-3", "playing")
    registry.deliver(decode_event(playing))
    registry.deliver(decode_event(playing))
    assert registry.stats().duplicates == 1
    registry.deliver(decode_event(play_event("op-3", "finished", ts=2.0)))
    registry.deliver(decode_event(play_event("op-3", "playing", ts=3.0)))  # after terminal
    stats = registry.stats()
    assert stats.late == 1
    assert stats.buffered_now == 0  # a late event for a settled key is not buffered
    assert handle.state == "finished"


def test_call_state_and_transcripts_route_by_call_id(
    setup: tuple[CallSession, Registry, Clock],
) -> None:
    session, registry, _ = setup
    registry.deliver(decode_event(state_event("call-9", "answered")))
    call = Call(session, "call-9")
    registry.add_call(call)
    assert call.state == "answered"
    tx = TranscribeHandle("tx-1", call)
    call._ops["tx-1"] = tx
    registry.add_transcribe("call-9", tx)
    second = TranscribeHandle("tx-2", call)
    registry.add_transcribe("call-9", second)  # refused by the platform: must not displace
    transcript = {
        "event_type": "calling.transcript.completed",
        "params": {"id": "t-1", "call_id": "call-9", "text": "hi"},
    }
    registry.deliver(decode_event(msgspec.json.encode(transcript)))
    assert tx.result().text == "hi"
    assert second.status is HandleStatus.PENDING


def test_unknown_and_uncorrelated_events_are_counted(
    setup: tuple[CallSession, Registry, Clock],
) -> None:
    _, registry, _ = setup
    registry.deliver(decode_event(b'{"event_type": "calling.call.hold", "params": {}}'))
    registry.deliver(decode_event(b'{"event_type": "calling.call.play", "params": {}}'))
    stats = registry.stats()
    assert stats.unknown == 2
    assert stats.buffered == 0


def test_ended_call_is_forgotten_and_late_state_dropped(
    setup: tuple[CallSession, Registry, Clock],
) -> None:
    session, registry, _ = setup
    call = Call(session, "call-5")
    registry.add_call(call)
    registry.deliver(decode_event(state_event("call-5", "ended", "hangup")))
    assert call.is_ended
    assert call.end_reason == "hangup"
    assert "call-5" not in registry.calls
    registry.deliver(decode_event(state_event("call-5", "answered")))
    assert registry.stats().late == 1
    assert call.state == "ended"


def test_event_history_is_bounded(setup: tuple[CallSession, Registry, Clock]) -> None:
    session, registry, _ = setup
    call = Call(session, "call-1")
    handle = PlayHandle("op-h", call)
    call._ops["op-h"] = handle
    registry.add_operation(handle)
    for i in range(200):
        state = "paused" if i % 2 else "playing"
        registry.deliver(decode_event(play_event("op-h", state, ts=float(i))))
    assert registry.stats().routed == 200
    assert handle._history is not None
    assert len(handle._history) == HISTORY_LIMIT
    assert handle._history[-1].timestamp == 199.0
