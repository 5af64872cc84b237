"""Control operations: the webhook sequences of each operation, timing and sub-commands."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signalwire_calls._codec import decode_event
from signalwire_calls.events import UnknownEvent
from signalwire_calls.testing import Callee, Simulator

from .helpers import Client, Receiver

PHONE = "+15550400001"


async def finished(sim: Simulator, call_id: str, control_id: str) -> None:
    await sim.wait_for_operation(call_id, control_id)
    await sim.wait_for_webhooks_idle()


def by_control(receiver: Receiver, control_id: str) -> list[dict[str, Any]]:
    return [e["params"] for e in receiver.events() if e["params"].get("control_id") == control_id]


def assert_typed(receiver: Receiver) -> None:
    """Every webhook decodes to a known event class of the library."""
    for hit in receiver.hits:
        assert not isinstance(decode_event(hit.body), UnknownEvent), hit.body


def tts(text: str) -> dict[str, Any]:
    return {"type": "tts", "params": {"text": text}}


def silence(seconds: float) -> dict[str, Any]:
    return {"type": "silence", "params": {"duration": seconds}}


# ---------------------------------------------------------------------------- play


async def test_play_tts_runs_for_its_length(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call()
    await client.ok(
        "calling.play",
        {"control_id": "p1", "play": [tts("x" * 30)], "status_url": receiver.url()},
        call_id,
    )
    op = await sim.wait_for_operation(call_id, "p1")
    await sim.wait_for_webhooks_idle()
    assert receiver.states("p1") == ["playing", "finished"]
    simulated = sim.engine.sim_now(op.started_at)
    assert simulated >= 2.0  # 30 chars at 15 chars/s
    assert_typed(receiver)
    params = by_control(receiver, "p1")[0]
    assert set(params) == {"call_id", "node_id", "control_id", "state"}


async def test_play_audio_length_table_and_loop(client: Client, sim: Simulator) -> None:
    sim.audio_lengths["https://e.com/a.mp3"] = 4.0
    call_id = await client.answered_call()
    item = {"type": "audio", "params": {"url": "https://e.com/a.mp3"}}
    await client.ok("calling.play", {"control_id": "p", "play": [item], "loop": 2}, call_id)
    op = await sim.wait_for_operation(call_id, "p")
    assert op.data["remaining"] == pytest.approx(8.0)


async def test_play_pause_resume_volume_stop(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call()
    await client.ok(
        "calling.play",
        {"control_id": "p", "play": [silence(1000)], "status_url": receiver.url()},
        call_id,
    )
    await client.ok("calling.play.pause", {"control_id": "p"}, call_id)
    await client.ok("calling.play.volume", {"control_id": "p", "volume": 6}, call_id)
    await client.ok("calling.play.resume", {"control_id": "p"}, call_id)
    await client.ok("calling.play.stop", {"control_id": "p"}, call_id)
    await finished(sim, call_id, "p")
    assert receiver.states("p") == ["playing", "paused", "playing", "finished"]
    assert sim.operation(call_id, "p").data["volume"] == 6
    # A sub-command on a finished operation is a no-op; on an unknown one a 404.
    await client.ok("calling.play.stop", {"control_id": "p"}, call_id)
    status, body = await client.send("calling.play.stop", {"control_id": "zzz"}, call_id)
    assert (status, body) == (404, {"error": "Not Found"})


async def test_play_ringtone_forever_ends_with_call(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call()
    ring = {"type": "ringtone", "params": {"name": "us"}}
    await client.ok(
        "calling.play", {"control_id": "r", "play": [ring], "status_url": receiver.url()}, call_id
    )
    await client.ok("calling.end", {}, call_id)
    await finished(sim, call_id, "r")
    assert receiver.states("r") == ["playing", "finished"]


async def test_play_unplayable_url_errors(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.unplayable.add("https://e.com/broken.mp3")
    call_id = await client.answered_call()
    item = {"type": "audio", "params": {"url": "https://e.com/broken.mp3"}}
    await client.ok(
        "calling.play", {"control_id": "b", "play": [item], "status_url": receiver.url()}, call_id
    )
    await finished(sim, call_id, "b")
    assert receiver.states("b") == ["playing", "error"]


async def test_duplicate_active_control_id_rejected(client: Client) -> None:
    call_id = await client.answered_call()
    await client.ok("calling.play", {"control_id": "d", "play": [silence(100)]}, call_id)
    status, body = await client.send(
        "calling.play", {"control_id": "d", "play": [silence(1)]}, call_id
    )
    assert status == 422
    assert body["errors"][0]["attribute"] == "control_id"


# ---------------------------------------------------------------------------- record


async def test_record_finishes_after_end_silence(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call()
    await client.ok(
        "calling.record",
        {
            "control_id": "r",
            "record": {"audio": {"format": "wav", "end_silence_timeout": 1.0}},
            "status_url": receiver.url(),
        },
        call_id,
    )
    await finished(sim, call_id, "r")
    events = by_control(receiver, "r")
    assert [e["state"] for e in events] == ["recording", "finished"]
    final = events[-1]
    assert final["url"].startswith("https://")
    assert final["duration"] >= 4.0  # 1 s delay + 2 s talk + 1 s silence
    assert final["size"] > 0
    assert final["record"] == {"audio": {"format": "wav", "direction": "speak", "stereo": False}}
    assert {"recording_id", "start_time", "end_time"} <= set(final)
    assert_typed(receiver)


async def test_record_until_stop_with_pause(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call()
    audio = {"end_silence_timeout": 0}
    await client.ok(
        "calling.record",
        {"control_id": "r", "record": {"audio": audio}, "status_url": receiver.url()},
        call_id,
    )
    await client.ok("calling.record.pause", {"control_id": "r", "behavior": "silence"}, call_id)
    await client.ok("calling.record.resume", {"control_id": "r"}, call_id)
    await client.ok("calling.record.stop", {"control_id": "r"}, call_id)
    await finished(sim, call_id, "r")
    events = by_control(receiver, "r")
    assert [e["state"] for e in events] == ["recording", "paused", "recording", "finished"]
    assert events[1]["pause_behavior"] == "silence"


async def test_record_max_length(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    audio = {"end_silence_timeout": 0, "max_length": 3}
    await client.ok("calling.record", {"control_id": "r", "record": {"audio": audio}}, call_id)
    op = await sim.wait_for_operation(call_id, "r")
    assert op.state == "finished"
    assert sim.engine.sim_now(op.started_at) >= 3.0


async def test_record_silent_callee_no_input(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.script(PHONE, Callee.answers(silent=True))
    call_id = await client.answered_call(PHONE)
    await client.ok(
        "calling.record",
        {"control_id": "r", "record": {"audio": {}}, "status_url": receiver.url()},
        call_id,
    )
    await finished(sim, call_id, "r")
    assert receiver.states("r") == ["recording", "no_input"]
    assert by_control(receiver, "r")[-1]["size"] == 0


async def test_record_ends_with_call(client: Client, sim: Simulator, receiver: Receiver) -> None:
    call_id = await client.answered_call()
    await client.ok(
        "calling.record",
        {
            "control_id": "r",
            "record": {"audio": {"end_silence_timeout": 0}},
            "status_url": receiver.url(),
        },
        call_id,
    )
    sim.hangup(call_id)
    await finished(sim, call_id, "r")
    assert receiver.states("r") == ["recording", "finished"]


async def test_record_leniency_audio_and_missing_control_id(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    call_id = await client.answered_call()
    await client.ok(
        "calling.record", {"audio": {"format": "mp3"}, "status_url": receiver.url()}, call_id
    )
    cmd = await sim.wait_for_command("calling.record")
    assert set(cmd.lenient) == {"record.audio", "control_id"}
    control_id = cmd.params["control_id"]
    assert cmd.params["record"] == {"audio": {"format": "mp3"}}
    # A stop without control_id addresses the only active recording.
    await client.ok("calling.record.stop", {}, call_id)
    await finished(sim, call_id, control_id)
    assert receiver.states(control_id)[-1] == "finished"


# ---------------------------------------------------------------------------- collect


def collect_results(receiver: Receiver, control_id: str) -> list[dict[str, Any]]:
    return [e["result"] for e in by_control(receiver, control_id)]


async def collect(
    client: Client, sim: Simulator, receiver: Receiver, callee: Callee, **params: Any
) -> list[dict[str, Any]]:
    sim.script(PHONE, callee)
    call_id = await client.answered_call(PHONE)
    body = {"control_id": "c", "status_url": receiver.url(), **params}
    await client.ok("calling.collect", body, call_id)
    await finished(sim, call_id, "c")
    return by_control(receiver, "c")


async def test_collect_digits_with_terminator(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    events = await collect(
        client, sim, receiver, Callee.answers(digits="12#"), digits={"max": 5, "terminators": "#"}
    )
    assert [e["result"] for e in events] == [
        {"type": "digit", "params": {"digits": "12", "terminator": "#"}}
    ]
    assert_typed(receiver)


async def test_collect_digits_max_reached(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    events = await collect(client, sim, receiver, Callee.answers(digits="1234"), digits={"max": 2})
    assert events[-1]["result"] == {"type": "digit", "params": {"digits": "12", "terminator": ""}}


async def test_collect_digits_then_digit_timeout(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    events = await collect(
        client, sim, receiver, Callee.answers(digits="7"), digits={"max": 4, "digit_timeout": 1}
    )
    assert events[-1]["result"] == {"type": "digit", "params": {"digits": "7", "terminator": ""}}


async def test_collect_no_input(client: Client, sim: Simulator, receiver: Receiver) -> None:
    events = await collect(
        client,
        sim,
        receiver,
        Callee.answers(),
        digits={"max": 1},
        initial_timeout=2,
        start_input_timers=True,
    )
    assert [e["result"] for e in events] == [{"type": "no_input"}]


async def test_collect_speech_with_partials_and_start_of_input(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    events = await collect(
        client,
        sim,
        receiver,
        Callee.answers(speech="talk to sales", confidence=0.8),
        speech={"end_silence_timeout": 0.5},
        partial_results=True,
        send_start_of_input=True,
    )
    assert events[0]["result"] == {"type": "start_of_input"}
    partials = [e for e in events if e.get("final") is False]
    assert [p["result"]["params"]["text"] for p in partials] == ["talk", "talk to"]
    assert events[-1]["final"] is True
    assert events[-1]["result"] == {
        "type": "speech",
        "params": {"text": "talk to sales", "confidence": 0.8},
    }
    assert_typed(receiver)


async def test_collect_no_match(client: Client, sim: Simulator, receiver: Receiver) -> None:
    events = await collect(
        client, sim, receiver, Callee.answers(speech="yes", no_match=True), speech={}
    )
    assert events[-1]["result"] == {"type": "no_match"}


async def test_collect_wrong_mode_is_no_match(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    events = await collect(client, sim, receiver, Callee.answers(digits="1"), speech={})
    assert events[-1]["result"] == {"type": "no_match"}


async def test_collect_successive_scripted_inputs(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.script(PHONE, Callee.answers(digits=["1", "2"]))
    call_id = await client.answered_call(PHONE)
    for cid in ("a", "b", "c"):
        body = {"control_id": cid, "digits": {"max": 1}, "status_url": receiver.url()}
        await client.ok("calling.collect", body, call_id)
        await finished(sim, call_id, cid)
    got = [collect_results(receiver, cid)[-1]["params"]["digits"] for cid in ("a", "b", "c")]
    assert got == ["1", "2", "2"]


async def test_collect_continuous(client: Client, sim: Simulator, receiver: Receiver) -> None:
    sim.script(PHONE, Callee.answers(speech=["one", "two"]))
    call_id = await client.answered_call(PHONE)
    body = {"control_id": "c", "speech": {}, "continuous": True, "status_url": receiver.url()}
    await client.ok("calling.collect", body, call_id)
    await sim.wait_for_webhook("calling.call.collect", control_id="c", count=2)
    await client.ok("calling.collect.stop", {"control_id": "c"}, call_id)
    await finished(sim, call_id, "c")
    events = by_control(receiver, "c")
    assert [(e["state"], e["result"].get("params", {}).get("text")) for e in events] == [
        ("collecting", "one"),
        ("collecting", "two"),
        ("finished", None),
    ]


async def test_collect_start_input_timers(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.script(PHONE, Callee.answers())
    call_id = await client.answered_call(PHONE)
    body = {
        "control_id": "c",
        "digits": {"max": 1},
        "initial_timeout": 1,
        "start_input_timers": False,
        "status_url": receiver.url(),
    }
    await client.ok("calling.collect", body, call_id)
    op = sim.operation(call_id, "c")
    assert not op.done  # no timer armed yet: it cannot time out
    await client.ok("calling.collect.start_input_timers", {"control_id": "c"}, call_id)
    await finished(sim, call_id, "c")
    assert collect_results(receiver, "c") == [{"type": "no_input"}]


@pytest.mark.parametrize("field", ["absent", False, True])
async def test_collect_initial_timeout_follows_start_input_timers(
    client: Client, sim: Simulator, receiver: Receiver, field: object
) -> None:
    """The documented default (false) holds the initial-timeout clock until
    ``calling.collect.start_input_timers``; only ``true`` arms it at once."""
    sim.script(PHONE, Callee.answers(silent=True))
    call_id = await client.answered_call(PHONE)
    body: dict[str, Any] = {
        "control_id": "c",
        "digits": {"max": 1},
        "initial_timeout": 1,
        "status_url": receiver.url(),
    }
    if field != "absent":
        body["start_input_timers"] = field
    await client.ok("calling.collect", body, call_id)
    if field is True:
        await finished(sim, call_id, "c")
        assert collect_results(receiver, "c") == [{"type": "no_input"}]
        return
    # Ten times the initial timeout, simulated: nothing may have happened.
    await asyncio.sleep(10 * sim.time_scale)
    assert not sim.operation(call_id, "c").done
    assert sim.webhooks_for(control_id="c") == []
    await client.ok("calling.collect.start_input_timers", {"control_id": "c"}, call_id)
    await finished(sim, call_id, "c")
    assert collect_results(receiver, "c") == [{"type": "no_input"}]
    op = sim.operation(call_id, "c")
    assert sim.engine.sim_now(op.started_at) >= 10 + 1


@pytest.mark.parametrize(("start_timers", "heard"), [(True, False), (False, True)])
async def test_collect_slow_callee_is_heard_only_while_the_clock_waits(
    client: Client, sim: Simulator, receiver: Receiver, start_timers: bool, heard: bool
) -> None:
    callee = Callee.answers(digits="5").with_(input_delay=3.0)
    events = await collect(
        client,
        sim,
        receiver,
        callee,
        digits={"max": 1},
        initial_timeout=2,
        start_input_timers=start_timers,
    )
    expected = (
        {"type": "digit", "params": {"digits": "5", "terminator": ""}}
        if heard
        else {"type": "no_input"}
    )
    assert [e["result"] for e in events] == [expected]


async def test_collect_stop_and_call_end(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.script(PHONE, Callee.answers(silent=True))
    call_id = await client.answered_call(PHONE)
    for cid in ("s", "e"):
        body = {"control_id": cid, "digits": {"max": 1}, "initial_timeout": 100}
        await client.ok("calling.collect", {**body, "status_url": receiver.url()}, call_id)
    await client.ok("calling.collect.stop", {"control_id": "s"}, call_id)
    sim.hangup(call_id)
    await finished(sim, call_id, "e")
    assert collect_results(receiver, "s") == [{"type": "no_input"}]
    assert collect_results(receiver, "e") == [{"type": "error"}]


async def test_collect_without_digits_or_speech_400(client: Client) -> None:
    call_id = await client.answered_call()
    status, body = await client.send("calling.collect", {"control_id": "c"}, call_id)
    assert (status, body) == (400, {"error": "Bad Request"})


# ---------------------------------------------------------------------------- detect


def detect_events(receiver: Receiver, control_id: str) -> list[dict[str, Any]]:
    return [e["detect"]["params"] for e in by_control(receiver, control_id)]


async def detect(
    client: Client,
    sim: Simulator,
    receiver: Receiver,
    callee: Callee,
    spec: dict[str, Any],
    **kw: Any,
) -> list[dict[str, Any]]:
    sim.script(PHONE, callee)
    call_id = await client.answered_call(PHONE)
    body = {"control_id": "d", "detect": spec, "status_url": receiver.url(), **kw}
    await client.ok("calling.detect", body, call_id)
    await finished(sim, call_id, "d")
    assert_typed(receiver)
    return detect_events(receiver, "d")


async def test_detect_machine_with_beep(client: Client, sim: Simulator, receiver: Receiver) -> None:
    events = await detect(
        client,
        sim,
        receiver,
        Callee.voicemail(greeting=4, beep=True),
        {"type": "machine", "params": {}},
    )
    assert events == [
        {"event": "MACHINE"},
        {"event": "NOT_READY"},
        {"event": "READY", "beep": True},
        {"event": "finished"},
    ]
    assert by_control(receiver, "d")[0]["detect"]["type"] == "machine"


async def test_detect_machine_without_message_end(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    events = await detect(
        client,
        sim,
        receiver,
        Callee.voicemail(greeting=4, beep=False),
        {"type": "machine", "params": {"detect_message_end": False}},
    )
    assert events == [{"event": "MACHINE"}, {"event": "finished"}]


async def test_detect_human(client: Client, sim: Simulator, receiver: Receiver) -> None:
    events = await detect(
        client, sim, receiver, Callee.answers(), {"type": "machine", "params": {}}
    )
    assert events == [{"event": "HUMAN"}, {"event": "finished"}]


async def test_detect_silent_unknown(client: Client, sim: Simulator, receiver: Receiver) -> None:
    events = await detect(
        client, sim, receiver, Callee.answers(silent=True), {"type": "machine", "params": {}}
    )
    assert events == [{"event": "UNKNOWN"}, {"event": "finished"}]


@pytest.mark.parametrize(("tone", "expected"), [(None, "CED"), ("CED", "CED"), ("ced", "CED")])
async def test_detect_fax(
    client: Client, sim: Simulator, receiver: Receiver, tone: str | None, expected: str
) -> None:
    params = {} if tone is None else {"tone": tone}
    events = await detect(client, sim, receiver, Callee.fax(), {"type": "fax", "params": params})
    assert events == [{"event": expected}, {"event": "finished"}]


async def test_detect_fax_other_tone_times_out(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    events = await detect(
        client, sim, receiver, Callee.fax(), {"type": "fax", "params": {"tone": "CNG"}}, timeout=3
    )
    assert events == [{"event": "finished"}]


async def test_detect_digit(client: Client, sim: Simulator, receiver: Receiver) -> None:
    events = await detect(
        client,
        sim,
        receiver,
        Callee.answers(digits="1*2"),
        {"type": "digit", "params": {"digits": "12"}},
        timeout=3,
    )
    assert events == [{"event": "1"}, {"event": "2"}, {"event": "finished"}]


async def test_detect_stop(client: Client, sim: Simulator, receiver: Receiver) -> None:
    call_id = await client.answered_call()
    body = {
        "control_id": "d",
        "detect": {"type": "fax", "params": {}},
        "status_url": receiver.url(),
    }
    await client.ok("calling.detect", body, call_id)
    await client.ok("calling.detect.stop", {"control_id": "d"}, call_id)
    await finished(sim, call_id, "d")
    assert detect_events(receiver, "d") == [{"event": "finished"}]


# ---------------------------------------------------------------------------- tap / stream


async def test_tap(client: Client, sim: Simulator, receiver: Receiver) -> None:
    call_id = await client.answered_call()
    body = {
        "control_id": "t",
        "tap": {"type": "audio", "params": {"direction": "both"}},
        "device": {"type": "rtp", "params": {"addr": "34.120.1.2", "port": 4000}},
        "status_url": receiver.url(),
    }
    await client.ok("calling.tap", body, call_id)
    await client.ok("calling.tap.stop", {"control_id": "t"}, call_id)
    await finished(sim, call_id, "t")
    events = by_control(receiver, "t")
    assert [e["state"] for e in events] == ["tapping", "finished"]
    assert events[0]["device"] == {
        "type": "rtp",
        "params": {"addr": "34.120.1.2", "port": 4000, "codec": "PCMU", "ptime": 20},
    }
    assert events[0]["tap"] == {"type": "audio", "params": {"direction": "both"}}
    assert_typed(receiver)


async def test_stream_ends_with_call(client: Client, sim: Simulator, receiver: Receiver) -> None:
    call_id = await client.answered_call()
    body = {
        "control_id": "s",
        "url": "wss://e.com/ws",
        "name": "main",
        "status_url": receiver.url(),
    }
    await client.ok("calling.stream", body, call_id)
    await client.ok("calling.end", {}, call_id)
    await finished(sim, call_id, "s")
    events = by_control(receiver, "s")
    assert [e["state"] for e in events] == ["streaming", "finished"]
    assert events[0]["url"] == "wss://e.com/ws"
    assert events[0]["name"] == "main"
    assert "segment_id" in events[0]
    assert_typed(receiver)


async def test_stream_stop(client: Client, sim: Simulator, receiver: Receiver) -> None:
    call_id = await client.answered_call()
    body = {"control_id": "s", "url": "wss://e.com/ws", "status_url": receiver.url()}
    await client.ok("calling.stream", body, call_id)
    await client.ok("calling.stream.stop", {"control_id": "s"}, call_id)
    await finished(sim, call_id, "s")
    assert receiver.states("s") == ["streaming", "finished"]
    assert "name" not in by_control(receiver, "s")[0]


# ---------------------------------------------------------------------------- transcribe


async def test_transcribe_stop_sends_transcript(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.script(PHONE, Callee.answers(transcript="hello there"))
    call_id = await client.answered_call(PHONE)
    await client.ok(
        "calling.transcribe", {"control_id": "t", "status_url": receiver.url()}, call_id
    )
    status, body = await client.send(
        "calling.transcribe", {"control_id": "t2", "status_url": receiver.url()}, call_id
    )
    assert (status, body) == (409, {"error": "Conflict"})
    await client.ok("calling.transcribe.stop", {"control_id": "t"}, call_id)
    hook = await sim.wait_for_webhook("calling.transcript.completed")
    payload = hook.payload
    assert "event_channel" not in payload
    assert payload["params"]["text"] == "hello there"
    assert payload["params"]["call_id"] == call_id
    assert {"id", "segment_id"} <= set(payload["params"])
    # After the stop a new transcription may start.
    await client.ok("calling.transcribe", {"control_id": "t3"}, call_id)
    assert_typed(receiver)


async def test_transcribe_on_call_end_and_failure(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    sim.script(PHONE, Callee.answers(transcribe_fails=True))
    call_id = await client.answered_call(PHONE)
    await client.ok(
        "calling.transcribe", {"control_id": "t", "status_url": receiver.url()}, call_id
    )
    sim.hangup(call_id)
    hook = await sim.wait_for_webhook("calling.transcript.failed")
    assert hook.payload["params"]["call_id"] == call_id
    assert "text" not in hook.payload["params"]


# ---------------------------------------------------------------------------- the rest


def flag(obj: object, name: str) -> bool:
    return bool(getattr(obj, name))


async def test_denoise_ai_live_userevent_fax(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    call = sim.calls[call_id]
    await client.ok("calling.denoise", {}, call_id)
    assert flag(call, "denoise")
    await client.ok("calling.denoise.stop", {}, call_id)
    assert not flag(call, "denoise")
    await client.ok("calling.ai_hold", {"timeout": "60", "prompt": "hold on"}, call_id)
    assert call.ai["on_hold"]
    await client.ok("calling.ai_unhold", {}, call_id)
    assert not call.ai["on_hold"]
    await client.ok("calling.ai_message", {"role": "system", "message_text": "hi"}, call_id)
    assert call.ai["messages"] == [{"role": "system", "message_text": "hi"}]
    await client.ok("calling.ai.stop", {}, call_id)
    assert call.ai["stopped"]
    start = {"start": {"lang": "en-US", "direction": ["remote-caller"]}}
    await client.ok("calling.live_transcribe", {"action": start}, call_id)
    assert flag(call, "live_transcribe")
    await client.ok("calling.live_transcribe", {"action": "stop"}, call_id)
    assert not flag(call, "live_transcribe")
    tstart = {"start": {"from_lang": "en-US", "to_lang": "es-ES", "direction": ["local-caller"]}}
    await client.ok("calling.live_translate", {"action": tstart}, call_id)
    assert call.live_translate is not None
    await client.ok("calling.user_event", {"event": {"kind": "ping"}}, call_id)
    assert call.user_events == [{"kind": "ping"}]
    await client.ok("calling.send_fax.stop", {"control_id": "f1"}, call_id)
    await client.ok("calling.receive_fax.stop", {"control_id": "f2"}, call_id)
    assert call.fax_stops == ["f1", "f2"]


async def test_ai_leniencies(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    await client.ok("calling.ai_hold", {"timeout": 120}, call_id)
    assert sim.calls[call_id].ai["hold"] == {"timeout": "120"}
    await client.ok("calling.ai_unhold", {"prompt": "back"}, call_id)
    cmd = await sim.wait_for_command("calling.ai_unhold")
    assert cmd.lenient == ("prompt",)


async def test_refer_sip(client: Client, sim: Simulator, receiver: Receiver) -> None:
    leg = await client.ok(
        "dial", {"from": "sip:a@e.com", "to": "sip:b@e.com", "url": "https://e.com/s"}
    )
    call_id = leg["id"]
    await sim.wait_for_call_state(call_id, "answered")
    device = {"type": "sip", "params": {"to": "sip:c@e.com"}}
    await client.ok("calling.refer", {"device": device, "status_url": receiver.url()}, call_id)
    hook = await sim.wait_for_webhook("calling.call.refer")
    params = hook.payload["params"]
    assert params["sip_refer_to"] == "sip:c@e.com"
    assert params["state"] == "success"
    assert params["sip_refer_response_code"] == "202"
    await sim.wait_for_call_state(call_id, "ended")
    assert_typed(receiver)


async def test_refer_needs_sip_call(client: Client) -> None:
    call_id = await client.answered_call()
    device = {"type": "sip", "params": {"to": "sip:c@e.com"}}
    status, body = await client.send("calling.refer", {"device": device}, call_id)
    assert status == 422
    assert body["errors"][0]["code"] == "invalid_state"


async def test_operations_without_status_url_still_run(client: Client, sim: Simulator) -> None:
    call_id = await client.answered_call()
    await client.ok("calling.play", {"control_id": "p", "play": [silence(1)]}, call_id)
    op = await sim.wait_for_operation(call_id, "p")
    assert op.history == ["playing", "finished"]
    assert sim.webhooks_for(control_id="p") == []
