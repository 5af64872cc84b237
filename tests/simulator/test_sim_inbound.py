"""Inbound calls: the signed SWML request, the SWML subset, refusals, REST commands, hang-up."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from aiohttp import web

from signalwire_calls import _signing
from signalwire_calls.testing import Callee, Simulator

from .helpers import Client, Receiver

CALLER = "+15557770001"
OUR_NUMBER = "+15557770002"
FOREVER = {"version": "1.0.0", "sections": {"main": [{"answer": {}}, {"sleep": -1}]}}


@dataclass
class SwmlApp:
    """An application's SWML endpoint: checks the signature, answers what it is told."""

    signing_key: str
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], bytes, bool]] = field(default_factory=list)
    hold: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{name}"

    def answer(self, name: str, document: Any, status: int = 200) -> str:
        body = document if isinstance(document, bytes) else msgspec.json.encode(document)
        self.answers[name] = (status, body)
        return self.url(name)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verified = _signing.Verifier(self.signing_key).verify(
            str(request.url), body, request.headers.get
        )
        self.requests.append((str(request.url), dict(request.headers), body, verified))
        self.arrived.set()
        if not verified:
            return web.Response(status=403)
        if self.hold is not None:
            await self.hold.wait()
        status, answer = self.answers.get(request.match_info["name"], (404, b""))
        return web.Response(status=status, body=answer, content_type="application/json")


@pytest.fixture
async def app(sim: Simulator) -> AsyncIterator[SwmlApp]:
    assert sim.signing_key is not None
    swml_app = SwmlApp(sim.signing_key)
    await swml_app.start()
    yield swml_app
    await swml_app.stop()


def swml(*steps: Any) -> dict[str, Any]:
    return {"version": "1.0.0", "sections": {"main": list(steps)}}


async def test_request_is_the_signed_platform_body(sim: Simulator, app: SwmlApp) -> None:
    url = app.answer("swml", FOREVER)
    call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    ((got_url, headers, body, verified),) = app.requests
    assert verified
    assert got_url == url
    message = url.encode() + body
    key = b"test-signing-key"
    assert headers["X-SignalWire-Signature"] == hmac.new(key, message, hashlib.sha1).hexdigest()
    assert headers["X-SignalWire-SHA256-Signature"] == (
        hmac.new(key, message, hashlib.sha256).hexdigest()
    )
    assert headers["Content-Type"] == "application/json"
    payload = msgspec.json.decode(body)
    assert list(payload) == ["call", "vars"]
    assert payload["vars"] == {}
    assert list(payload["call"]) == [
        "call_id",
        "node_id",
        "segment_id",
        "call_state",
        "direction",
        "type",
        "from",
        "to",
        "from_number",
        "to_number",
        "headers",
        "project_id",
        "space_id",
    ]
    described = payload["call"]
    assert described["call_id"] == described["segment_id"] == call.id
    assert (described["call_state"], described["direction"], described["type"]) == (
        "created",
        "inbound",
        "phone",
    )
    assert (described["from"], described["to"]) == (CALLER, OUR_NUMBER)
    assert (described["from_number"], described["to_number"]) == (CALLER, OUR_NUMBER)
    assert described["headers"] == []
    assert described["project_id"] == sim.project
    assert described["space_id"] == sim.engine.space_id
    assert call.status == "answered"
    assert call.history == ["created", "answered"]
    assert call.swml_error is None
    assert sim.live_calls == 1
    leg = sim.engine.leg(call)
    assert (leg["direction"], leg["type"], leg["status"]) == (
        "inbound",
        "relay_pstn_call",
        "answered",
    )


async def test_swml_subset_runs_then_hangs_up(sim: Simulator, app: SwmlApp) -> None:
    url = app.answer(
        "swml",
        swml(
            "answer",
            {"play": {"url": "say:Hello"}},
            {"play": {"urls": ["silence:1", "ring:2:us"], "volume": 3}},
            {"sleep": 1000},
            {"sleep": {"duration": 500}},
            {"hangup": {}},
            {"play": {"url": "say:never played"}},
        ),
    )
    call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    assert call.status == "answered"
    await sim.wait_for_call_state(call.id, "ended")
    assert call.history == ["created", "answered", "ending", "ended"]
    assert call.end_reason == "hangup"
    assert call.swml_step == 6  # stopped at the hangup
    assert call.answered_mono is not None
    assert call.ended_mono is not None
    ran = (call.ended_mono - call.answered_mono) / sim.time_scale
    assert ran >= 5 / 15 + 1 + 2 + 1 + 0.5  # say:Hello, silence, ring, the two sleeps
    assert sim.webhooks_for(call_id=call.id) == []  # no call-state webhooks for inbound


async def test_end_of_main_hangs_up_and_play_answers(sim: Simulator, app: SwmlApp) -> None:
    url = app.answer("swml", swml({"play": {"url": "silence:0.5"}}))
    call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    assert call.status == "answered"  # play answers the call by itself
    await sim.wait_for_call_state(call.id, "ended")
    assert call.end_reason == "hangup"


async def test_hangup_reason_and_unanswered_end(sim: Simulator, app: SwmlApp) -> None:
    url = app.answer("swml", swml({"hangup": {"reason": "busy"}}))
    call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    assert (call.status, call.end_reason) == ("ended", "busy")
    assert call.history == ["created", "ended"]
    assert sim.live_calls == 0


@pytest.mark.parametrize(
    ("name", "document", "status", "reason"),
    [
        ("connect", swml("answer", {"connect": {"to": "+15550001111"}}), 200, "'connect'"),
        ("ai", swml({"ai": {}}), 200, "unsupported SWML method 'ai'"),
        ("yaml", b"version: 1.0.0\nsections:\n  main:\n  - answer\n", 200, "not a JSON"),
        ("forbidden", FOREVER, 403, "HTTP 403"),
        ("broken", FOREVER, 500, "HTTP 500"),
        ("list", [1, 2], 200, "not a JSON object"),
        ("nomain", {"sections": {"other": []}}, 200, "sections.main"),
        ("badsleep", swml({"sleep": -5}), 200, "sections.main[0].sleep"),
        ("badplay", swml({"play": {"url": "ftp://x"}}), 200, "not a playable sound"),
        ("twourls", swml({"play": {"url": "say:a", "urls": ["say:b"]}}), 200, "exactly one"),
        ("typo", swml({"answer": {"max_durration": 5}}), 200, "max_durration"),
        ("twokeys", swml({"answer": {}, "hangup": {}}), 200, "one {method: params}"),
    ],
)
async def test_refusals_fail_the_call_loudly(
    sim: Simulator,
    app: SwmlApp,
    caplog: pytest.LogCaptureFixture,
    name: str,
    document: Any,
    status: int,
    reason: str,
) -> None:
    url = app.answer(name, document, status)
    with caplog.at_level(logging.WARNING, logger="signalwire_calls.testing"):
        call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    assert call.status == "failed"
    assert call.end_reason == "error"
    assert call.swml_error is not None
    assert reason in call.swml_error
    assert "answered" not in call.history
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert call.id in warnings[0].getMessage()
    assert reason in warnings[0].getMessage()


async def test_a_bad_signature_is_refused_by_the_app(app: SwmlApp) -> None:
    # The app answers 403 to an unsigned request: the call fails with that status.
    async with Simulator(time_scale=0.01, signing_key=None) as unsigned:
        url = app.answer("swml", FOREVER)
        call = await unsigned.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    assert app.requests[-1][3] is False
    assert call.status == "failed"
    assert call.swml_error is not None
    assert "HTTP 403" in call.swml_error


async def test_unreachable_url_fails_the_call(sim: Simulator) -> None:
    dead = Receiver()
    await dead.start()
    url = dead.url("/swml")
    await dead.stop()
    call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    assert call.status == "failed"
    assert call.swml_error is not None
    assert "failed" in call.swml_error


async def test_non_loopback_urls_need_the_flag(app: SwmlApp) -> None:
    # 0.0.0.0 is not a loopback address, yet connecting to it reaches this machine, so
    # the flag can be tested without leaving it.
    app.answer("swml", FOREVER)
    url = app.url("swml", host="0.0.0.0")
    async with Simulator(time_scale=0.01, signing_key=app.signing_key) as strict:
        call = await strict.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    assert call.status == "failed"
    assert call.swml_error is not None
    assert "not a loopback address" in call.swml_error
    assert app.requests == []
    async with Simulator(
        time_scale=0.01, signing_key=app.signing_key, allow_external_webhooks=True
    ) as open_sim:
        call = await open_sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
        assert call.status == "answered"
    assert len(app.requests) == 1


async def test_rest_commands_on_an_inbound_call(
    sim: Simulator, app: SwmlApp, client: Client, receiver: Receiver
) -> None:
    url = app.answer("swml", FOREVER)
    callee = Callee.answers(digits="7")
    call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url, callee=callee)
    leg = await client.ok(
        "calling.play",
        {
            "control_id": "p",
            "play": [{"type": "tts", "params": {"text": "hello"}}],
            "status_url": receiver.url(),
        },
        call.id,
    )
    assert (leg["status"], leg["direction"], leg["type"]) == (
        "answered",
        "inbound",
        "relay_pstn_call",
    )
    await client.ok(
        "calling.collect",
        {"control_id": "c", "digits": {"max": 1}, "status_url": receiver.url()},
        call.id,
    )
    await sim.wait_for_operation(call.id, "c")
    await sim.wait_for_operation(call.id, "p")
    await sim.wait_for_webhooks_idle()
    assert receiver.states("p") == ["playing", "finished"]
    (result,) = [e["params"]["result"] for e in receiver.events("calling.call.collect")]
    assert result == {"type": "digit", "params": {"digits": "7", "terminator": ""}}
    assert call.status == "answered"  # the SWML sleep goes on
    await client.ok("calling.end", {}, call.id)
    await sim.wait_for_call_state(call.id, "ended")
    status, body = await client.send("calling.play.stop", {"control_id": "p"}, call.id)
    assert (status, body) == (404, {"error": "Not Found"})


async def test_caller_hangs_up_then_404(
    sim: Simulator, app: SwmlApp, client: Client, receiver: Receiver
) -> None:
    url = app.answer("swml", FOREVER)
    callee = Callee.answers(hangup_after=3)
    call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url, callee=callee)
    await client.ok(
        "calling.play",
        {
            "control_id": "m",
            "play": [{"type": "silence", "params": {"duration": 600}}],
            "status_url": receiver.url(),
        },
        call.id,
    )
    await client.ok(
        "calling.record",
        {"control_id": "r", "record": {"audio": {}}, "status_url": receiver.url()},
        call.id,
    )
    ended = await sim.wait_for_call_state(call.id, "ended")
    assert ended.end_reason == "hangup"
    await sim.wait_for_webhooks_idle()
    assert receiver.states("m") == ["playing", "finished"]
    assert receiver.states("r")[-1] in ("finished", "no_input")
    assert receiver.events("calling.call.state") == []
    status, body = await client.send("calling.play.stop", {"control_id": "m"}, call.id)
    assert (status, body) == (404, {"error": "Not Found"})
    status, _ = await client.send("calling.end", {}, call.id)
    assert status == 404
    assert sim.live_calls == 0


async def test_sim_hangup_while_the_swml_is_fetched(sim: Simulator, app: SwmlApp) -> None:
    app.hold = asyncio.Event()
    url = app.answer("swml", FOREVER)
    placing = asyncio.create_task(sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url))
    call = await sim.wait_for_call()
    async with asyncio.timeout(5):
        await app.arrived.wait()
    sim.hangup(call.id)
    app.hold.set()
    assert await placing is call
    assert call.history == ["created", "ended"]
    assert call.swml_error is None  # nothing failed: the caller gave up first


async def test_caller_script_defaults_to_the_calling_number(sim: Simulator, app: SwmlApp) -> None:
    sim.script(CALLER, Callee.answers(hangup_after=1))
    url = app.answer("swml", FOREVER)
    call = await sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url)
    assert call.callee.hangup_after == 1
    await sim.wait_for_call_state(call.id, "ended")


async def test_inbound_calls_count_as_live(sim: Simulator, app: SwmlApp) -> None:
    url = app.answer("swml", FOREVER)
    calls = await asyncio.gather(
        *(sim.place_inbound(from_=CALLER, to=OUR_NUMBER, url=url) for _ in range(3))
    )
    assert sim.live_calls == sim.peak_live_calls == 3
    for call in calls:
        sim.hangup(call.id)
    await sim.wait_for(lambda: sim.live_calls == 0)
    assert sim.peak_live_calls == 3


async def test_place_inbound_needs_a_started_simulator() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await Simulator().place_inbound(from_=CALLER, to=OUR_NUMBER, url="http://127.0.0.1:9/")
