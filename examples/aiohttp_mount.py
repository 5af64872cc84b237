"""The webhook receiver inside your own aiohttp application.

Your app already serves HTTP; the session serves no port of its own
(``serve_receiver=False``) and its webhook routes are mounted in your app under
``/hooks`` (``session.webhook_app()``). The app's cleanup context opens the session with
the app and closes it with the app. Two routes of the app use the session: ``POST
/calls`` dials a number and starts a menu flow in the background, ``GET /calls/{id}``
waits for the flow's answer.

Here the bundled simulator plays the SignalWire space and this program plays the app's
client. In production, ``public_url`` is the address the platform reaches the app at
(``https://app.example.com``), the credentials come from ``CallSession.from_env`` and the
app is served by ``web.run_app(app)``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from signalwire_calls import Call, CallSession, Digits, WaitTimeout, tts
from signalwire_calls.testing import Callee, Simulator

CALLER = "+15559870000"
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}

SESSION = web.AppKey("session", CallSession)
FLOWS = web.AppKey("flows", dict[str, "asyncio.Task[str | None]"])


async def menu(call: Call) -> str | None:
    """The call flow: ask for a digit, say goodbye, hang up; the digit pressed."""
    try:
        await call.answered(timeout=60)
        ask = await call.prompt(tts("Press 1 to confirm, 2 to cancel."), digits=Digits(max=1))
        choice = await ask.finished(timeout=30)
        bye = await call.play(tts("Thank you, goodbye."))
        await bye.finished(timeout=30)
        return choice.digits
    finally:
        await call.end()
        await call.ended(timeout=30)


async def start_call(request: web.Request) -> web.Response:
    """``POST /calls {"to": "+1..."}``: dial, run the flow in the background, 202."""
    body = await request.json()
    call = await request.app[SESSION].dial(to=body["to"], from_=CALLER, swml=SWML)
    request.app[FLOWS][call.id] = asyncio.create_task(menu(call))
    return web.json_response({"call_id": call.id}, status=202)


async def call_result(request: web.Request) -> web.Response:
    """``GET /calls/{call_id}``: the flow's answer (waits up to 30 s for it)."""
    flow = request.app[FLOWS].get(request.match_info["call_id"])
    if flow is None:
        raise web.HTTPNotFound()
    try:
        digits = await asyncio.wait_for(asyncio.shield(flow), timeout=30)
    except (TimeoutError, WaitTimeout):
        return web.json_response({"state": "running"})
    return web.json_response({"state": "done", "digits": digits})


async def health(request: web.Request) -> web.Response:
    stats = request.app[SESSION].stats()
    webhooks = stats.receiver.accepted if stats.receiver is not None else 0
    return web.json_response({"live_calls": stats.registry.live_calls, "webhooks": webhooks})


def make_app(session: CallSession) -> web.Application:
    """Your application, with the session's webhook routes mounted under /hooks."""
    app = web.Application()
    app[SESSION] = session
    app[FLOWS] = {}

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        async with session:  # opened with the app, closed with it
            yield
            for flow in app[FLOWS].values():
                flow.cancel()

    app.cleanup_ctx.append(session_context)
    app.router.add_post("/calls", start_call)
    app.router.add_get("/calls/{call_id}", call_result)
    app.router.add_get("/health", health)
    app.add_subapp("/hooks", session.webhook_app())  # the same path as mount_path
    return app


async def main() -> int:
    async with Simulator(time_scale=0.05) as sim:
        sim.script("+15551230001", Callee.answers(after=2, digits="1"))
        # the app's listening socket first: public_url must name its port
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        session = CallSession(
            space=sim.base_url,
            project=sim.project,
            token=sim.token,
            signing_key=sim.signing_key,
            serve_receiver=False,
            public_url=public_url,
            mount_path="/hooks",
        )
        runner = web.AppRunner(make_app(session))
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            print(f"app at {public_url}; webhooks at {session.status_url}")
            async with aiohttp.ClientSession(public_url) as client:
                async with client.post("/calls", json={"to": "+15551230001"}) as resp:
                    call_id = (await resp.json())["call_id"]
                    print(f"POST /calls -> {resp.status} {call_id}")
                async with client.get(f"/calls/{call_id}") as resp:
                    print(f"GET /calls/{call_id} -> {await resp.json()}")
                async with client.get("/health") as resp:
                    print(f"GET /health -> {await resp.json()}")
        finally:
            await runner.cleanup()  # closes the session too
            sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
