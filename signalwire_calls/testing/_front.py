"""A round-robin HTTP front for tests and demos: a stand-in for a load balancer in front of
several webhook receivers.

Each POST goes to the next receiver in turn, with its path, query, body and signature
headers; a receiver that refuses the connection or answers 5xx is skipped for the next
one, as a load balancer retries on failure. When every receiver fails the front answers
503 (the platform then sends the webhook again).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from .._signing import SHA1_HEADER, SHA256_HEADER

__all__ = ["RoundRobinFront"]

#: Request headers passed on (the signature ones among them).
_PASS = ("Content-Type", SHA256_HEADER, SHA1_HEADER)


class RoundRobinFront:
    """Forwards each POST to one of ``targets`` (base URLs, ``http://host:port``) in turn,
    trying the others when it fails.

        async with RoundRobinFront([r1.origin, r2.origin]) as front:
            public_url = front.url   # give it to receivers and sessions as public_url

    ``targets`` may be changed while it runs (``front.targets = [...]``). ``stats``
    counts requests ``forwarded`` (answered by a receiver), ``retried`` on another
    receiver after a failure, and ``failed`` (every receiver failed: 503).
    """

    def __init__(self, targets: Sequence[str], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.targets = [t.rstrip("/") for t in targets]
        self._host = host
        self._port = port
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.forwarded = 0
        self.retried = 0
        self.failed = 0

    @property
    def url(self) -> str:
        """``http://host:port``: the base URL the front answers at."""
        if self._runner is None:
            raise RuntimeError("the front is not started: await start() first")
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10),
            connector=aiohttp.TCPConnector(limit=0),
            skip_auto_headers=("User-Agent",),
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> RoundRobinFront:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        body = await request.read()
        headers = {name: request.headers[name] for name in _PASS if name in request.headers}
        targets = list(self.targets)
        first = next(self._turn)
        for attempt in range(len(targets)):
            target = targets[(first + attempt) % len(targets)]
            if attempt:
                self.retried += 1
            try:
                async with self._client.request(
                    request.method, target + request.path_qs, data=body, headers=headers
                ) as answer:
                    payload = await answer.read()
                    if answer.status >= 500:
                        continue
                    self.forwarded += 1
                    return web.Response(
                        status=answer.status,
                        body=payload,
                        content_type=answer.content_type if payload else None,
                    )
            except (aiohttp.ClientError, OSError, TimeoutError):
                continue
        self.failed += 1
        return web.Response(status=503)
