"""CallSession lifecycle, configuration and receiver placement."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web

from signalwire_calls import (
    CallSession,
    ConfigurationError,
    SessionStateError,
    silence,
)
from signalwire_calls.testing import Callee, Simulator

from .conftest import CALLER, HUMAN, SWML, make_session

T = 5.0


def test_missing_credentials_say_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIGNALWIRE_SPACE", "SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError) as info:
        CallSession.from_env()
    assert "SIGNALWIRE_" in str(info.value)


def test_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_SPACE", "example")
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "proj-1")
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", "PT-secret-token")
    monkeypatch.setenv("SIGNALWIRE_PUBLIC_URL", "https://hooks.example.com")
    monkeypatch.setenv("SIGNALWIRE_SIGNING_KEY", "PSK_test")
    session = CallSession.from_env(serve_receiver=False)
    assert "https://example.signalwire.com" in repr(session)
    assert "PT-secret-token" not in repr(session)
    assert session.status_url == "https://hooks.example.com/signalwire/events"


@pytest.mark.parametrize(
    "options",
    [
        {"public_url": "https://hooks.example.com", "serve_receiver": False},
        {"receiver_host": "0.0.0.0"},
        {"receiver_host": "10.1.2.3", "public_url": "http://127.0.0.1:9"},
    ],
)
def test_a_receiver_reachable_from_outside_needs_a_signing_key(
    options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigurationError, match="signing_key") as info:
        CallSession(space="http://127.0.0.1:9", project="p", token="t", **options)
    assert "allow_unsigned_webhooks" in str(info.value)
    CallSession(space="http://127.0.0.1:9", project="p", token="t", signing_key="k", **options)
    CallSession(
        space="http://127.0.0.1:9", project="p", token="t", allow_unsigned_webhooks=True, **options
    )


async def test_allowing_unsigned_webhooks_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    session = CallSession(
        space="http://127.0.0.1:9",
        project="p",
        token="t",
        serve_receiver=False,
        public_url="https://hooks.example.com",
        allow_unsigned_webhooks=True,
    )
    with caplog.at_level(logging.WARNING, logger="signalwire_calls"):
        async with session:
            pass
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unsigned" in warnings[0].getMessage()
    assert "https://hooks.example.com/signalwire/events" in warnings[0].getMessage()


def test_serve_receiver_false_needs_public_url() -> None:
    with pytest.raises(ConfigurationError):
        CallSession(space="http://127.0.0.1:9", project="p", token="t", serve_receiver=False)


async def test_unopened_session_refuses_commands() -> None:
    session = CallSession(space="http://127.0.0.1:9", project="p", token="t")
    with pytest.raises(SessionStateError, match="not open yet") as info:
        await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    assert isinstance(info.value, RuntimeError)
    await session.aclose()


async def test_receiver_mounted_in_a_user_app(sim: Simulator) -> None:
    """serve_receiver=False: the user's own aiohttp app hosts the receiver."""
    app = web.Application()
    runner = web.AppRunner(app)
    site_port = 0
    session: CallSession | None = None
    try:
        # the public URL is only known once the user's site is bound: bind first
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", site_port)
        await site.start()
        port = runner.addresses[0][1]
        session = make_session(
            sim,
            serve_receiver=False,
            public_url=f"http://127.0.0.1:{port}",
            mount_path="/hooks",
        )
        await runner.cleanup()  # rebuild the app with the sub-app mounted
        app = web.Application()
        app.add_subapp("/hooks", session.webhook_app())
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with session:
            sim.script(HUMAN, Callee.answers(after=0.5))
            call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
            await call.answered(timeout=T)
            play = await call.play(silence(0.2))
            assert (await play.finished(timeout=T)).state == "finished"
            assert session.status_url == f"http://127.0.0.1:{port}/hooks/signalwire/events"
            received = session.stats().receiver
            assert received is not None
            assert received.accepted >= 5  # created, ringing, answered, playing, finished
    finally:
        await runner.cleanup()
        if session is not None:
            await session.aclose()


async def test_stats_count_both_ends(sim: Simulator, session: CallSession) -> None:
    sim.script(HUMAN, Callee.answers(after=0.5))
    call = await session.dial(to=HUMAN, from_=CALLER, swml=SWML)
    await call.answered(timeout=T)
    await (await call.play(silence(0.1))).finished(timeout=T)
    await call.end()
    await call.ended(timeout=T)
    stats = session.stats()
    assert stats.commands_sent == 3
    assert stats.receiver is not None
    assert stats.receiver.received >= 6
    assert stats.registry.routed == stats.receiver.accepted
    assert stats.registry.pending_operations == 0
