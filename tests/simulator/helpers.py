"""Test helpers: a raw aiohttp command client and a webhook-collecting receiver."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from signalwire_calls.testing import Simulator

TIME_SCALE = 0.01


@dataclass
class Hit:
    """One webhook the test receiver got."""

    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@dataclass
class Receiver:
    """A small aiohttp server collecting every POST as (url, headers, body)."""

    hits: list[Hit] = field(default_factory=list)
    answer_status: int = 200
    fail_first: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503)
        self.hits.append(Hit(str(request.url), dict(request.headers), body))
        return web.Response(status=self.answer_status)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        out = [h.json for h in self.hits]
        return [e for e in out if event_type is None or e["event_type"] == event_type]

    def states(self, control_id: str, key: str = "state") -> list[Any]:
        return [
            e["params"].get(key)
            for e in self.events()
            if e["params"].get("control_id") == control_id
        ]


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Client:
    """Posts raw JSON commands with Basic auth (the library's own session is not used)."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session
        self.auth = basic_auth(sim.project, sim.token)

    async def raw(
        self, body: bytes | dict[str, Any], *, auth: str | None = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        async with self.session.post(
            self.sim.url,
            data=data,
            headers={"Content-Type": "application/json", "Authorization": auth or self.auth},
        ) as resp:
            text = await resp.read()
            payload = msgspec.json.decode(text) if text else None
            return resp.status, payload, resp

    async def send(
        self, command: str, params: dict[str, Any], call_id: str | None = None
    ) -> tuple[int, Any]:
        body: dict[str, Any] = {"command": command, "params": params}
        if call_id is not None:
            body["id"] = call_id
        status, payload, _ = await self.raw(body)
        return status, payload

    async def ok(
        self, command: str, params: dict[str, Any], call_id: str | None = None
    ) -> dict[str, Any]:
        status, payload = await self.send(command, params, call_id)
        assert status == 200, (status, payload)
        assert isinstance(payload, dict)
        return payload

    async def dial(
        self,
        to: str = "+15550100001",
        *,
        status_url: str | None = None,
        events: list[str] | None = None,
        **extra: Any,
    ) -> str:
        params: dict[str, Any] = {
            "from": "+15559870000",
            "to": to,
            "url": "https://example.com/swml",
        }
        if status_url is not None:
            params["status_url"] = status_url
            params["status_events"] = events or ["created", "ringing", "answered", "ended"]
        params.update(extra)
        leg = await self.ok("dial", params)
        return str(leg["id"])

    async def answered_call(self, to: str = "+15550100001", **kw: Any) -> str:
        call_id = await self.dial(to, **kw)
        await self.sim.wait_for_call_state(call_id, "answered")
        return call_id
