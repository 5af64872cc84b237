"""The webhook receiver inside a FastAPI application served by uvicorn.

The session serves no port of its own (``serve_receiver=False``); its ASGI app
(``session.asgi_app()``) is mounted in FastAPI under ``/hooks``, and FastAPI's lifespan
opens the session with the app and closes it with the app. Two routes use the session:
``POST /calls`` dials a number and starts a menu flow in the background, ``GET
/calls/{call_id}`` waits for the flow's answer. Starlette mounts the same way
(``Mount("/hooks", app=session.asgi_app())``).

Here the bundled simulator plays the SignalWire space, uvicorn serves the app on
127.0.0.1 and this program plays the app's client. In production, ``public_url`` is the
address the platform reaches the app at, the credentials come from
``CallSession.from_env`` and uvicorn is started the usual way (``uvicorn module:app``).
FastAPI and uvicorn are not dependencies of signalwire_calls: ``pip install fastapi
uvicorn``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from signalwire_calls import Call, CallSession, Digits, WaitTimeout, tts
from signalwire_calls.testing import Callee, Simulator

CALLER = "+15559870000"
SWML = {"version": "1.0.0", "sections": {"main": [{"answer": {}}]}}


class CallRequest(BaseModel):
    to: str


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


def make_app(session: CallSession) -> FastAPI:
    """Your application, with the session's webhook routes mounted under /hooks."""
    flows: dict[str, asyncio.Task[str | None]] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with session:  # opened with the app, closed with it
            yield
            for flow in flows.values():
                flow.cancel()

    app = FastAPI(lifespan=lifespan)
    app.mount("/hooks", session.asgi_app())  # the same path as mount_path

    @app.post("/calls", status_code=202)
    async def start_call(request: CallRequest) -> dict[str, str]:
        call = await session.dial(to=request.to, from_=CALLER, swml=SWML)
        flows[call.id] = asyncio.create_task(menu(call))
        return {"call_id": call.id}

    @app.get("/calls/{call_id}")
    async def call_result(call_id: str) -> dict[str, str | None]:
        flow = flows.get(call_id)
        if flow is None:
            raise HTTPException(status_code=404)
        try:
            digits = await asyncio.wait_for(asyncio.shield(flow), timeout=30)
        except (TimeoutError, WaitTimeout):
            return {"state": "running"}
        return {"state": "done", "digits": digits}

    @app.get("/health")
    async def health() -> dict[str, int]:
        stats = session.stats()
        webhooks = stats.receiver.accepted if stats.receiver is not None else 0
        return {"live_calls": stats.registry.live_calls, "webhooks": webhooks}

    return app


async def main() -> int:
    async with Simulator(time_scale=0.05) as sim:
        sim.script("+15551230001", Callee.answers(after=2, digits="2"))
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
        config = uvicorn.Config(make_app(session), log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(10):
                while not server.started and not serving.done():
                    await asyncio.sleep(0.01)
            if serving.done():
                return 1  # uvicorn could not start (it logged why)
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
            server.should_exit = True  # the lifespan's exit closes the session
            await serving
            sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
