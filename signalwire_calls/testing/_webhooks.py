"""Webhook delivery: signed JSON POSTs through one pooled client, ordered per operation.

Events of one key (status_url + control_id, or status_url + call_id) go out one at a
time and in order; different keys are delivered concurrently by a fixed pool of worker
tasks (no task per event). A receiver that is down or answers 5xx is retried with
exponential backoff a bounded number of times; the key's later events wait behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from .._logthrottle import LogThrottle
from .._signing import sign

__all__ = ["WebhookRecord", "WebhookSender"]

_log = logging.getLogger("signalwire_calls.testing")

Outcome = Literal["pending", "delivered", "failed", "dropped"]


@dataclass(slots=True, eq=False)
class WebhookRecord:
    """One webhook the simulator sent (or meant to send) and what became of it."""

    url: str
    body: bytes
    event_type: str
    call_id: str | None
    control_id: str | None
    state: str | None
    headers: dict[str, str] = field(default_factory=dict)
    outcome: Outcome = "pending"
    status: int | None = None
    attempts: int = 0
    error: str | None = None
    duplicate: bool = False
    created_at: float = 0.0
    delivered_at: float | None = None
    delay: float = 0.0
    _not_before: float = 0.0
    _done: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def payload(self) -> Any:
        """The body parsed as JSON."""
        import json

        return json.loads(self.body)

    def _settle(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def wait_future(self) -> asyncio.Future[None]:
        """A future resolved once this webhook is delivered, failed or dropped."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            if self.outcome != "pending":
                self._done.set_result(None)
        return self._done


class WebhookSender:
    """Delivers :class:`WebhookRecord` s in order per key with bounded concurrency."""

    def __init__(
        self,
        *,
        signing_key: str | None,
        concurrency: int = 64,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: float = 10.0,
        on_change: Callable[[], None] | None = None,
        allow_external: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError("webhook_concurrency: must be >= 1")
        if attempts < 1:
            raise ValueError("webhook_attempts: must be >= 1")
        self.signing_key = signing_key
        self._refused_log = LogThrottle(_log)  # one per simulator
        self.allow_external = allow_external
        self._local_urls: dict[str, bool] = {}
        self.concurrency = concurrency
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self._on_change = on_change
        self._queues: dict[tuple[str, str], deque[WebhookRecord]] = {}
        self._held: dict[tuple[str, str], tuple[WebhookRecord, asyncio.TimerHandle]] = {}
        self._ready: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            skip_auto_headers=("User-Agent",),
        )
        self._workers = [
            asyncio.create_task(self._worker(), name=f"sim-webhook-{i}")
            for i in range(self.concurrency)
        ]

    async def aclose(self) -> None:
        for _, handle in self._held.values():
            handle.cancel()
        self._held.clear()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        for queue in self._queues.values():
            for record in queue:
                record.outcome = "failed"
                record.error = "simulator closed"
                record._settle()
        self._queues.clear()

    @property
    def pending(self) -> int:
        """Webhooks queued or in flight."""
        return self._pending

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # ------------------------------------------------------------------ enqueue

    def enqueue(
        self, record: WebhookRecord, key: tuple[str, str], *, reorder: bool = False
    ) -> None:
        """Queue ``record`` behind the other webhooks of ``key``.

        With ``reorder`` the record is held until the next record of the same key has
        been queued (or a short while has passed), so the two swap places.
        """
        self._pending += 1
        self._idle.clear()
        if record.delay > 0.0:
            record._not_before = time.monotonic() + record.delay
        held = self._held.pop(key, None)
        if reorder and held is None:
            assert self._loop is not None
            handle = self._loop.call_later(0.05 + record.delay, self._release_held, key)
            self._held[key] = (record, handle)
            return
        self._push(record, key)
        if held is not None:
            held[1].cancel()
            self._push(held[0], key)

    def _release_held(self, key: tuple[str, str]) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._push(held[0], key)

    def _push(self, record: WebhookRecord, key: tuple[str, str]) -> None:
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque((record,))
            self._ready.put_nowait(key)
        else:
            queue.append(record)

    # ------------------------------------------------------------------ delivery

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self._ready.get()
            queue = self._queues[key]
            record = queue[0]
            wait = record._not_before - time.monotonic()
            if wait > 0.0:
                loop.call_later(wait, self._ready.put_nowait, key)
                continue
            retry = await self._deliver(record)
            if retry:
                record._not_before = time.monotonic() + self.backoff * 2 ** (record.attempts - 1)
                self._ready.put_nowait(key)
                continue
            queue.popleft()
            if queue:
                self._ready.put_nowait(key)
            else:
                del self._queues[key]
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()
            record._settle()
            if self._on_change is not None:
                self._on_change()

    def _is_local(self, url: str) -> bool:
        local = self._local_urls.get(url)
        if local is None:
            host = urlsplit(url).hostname or ""
            if host == "localhost":
                local = True
            else:
                try:
                    local = ipaddress.ip_address(host).is_loopback
                except ValueError:
                    local = False
            if len(self._local_urls) < 10_000:
                self._local_urls[url] = local
        return local

    async def post_signed(self, url: str, body: bytes, *, limit: int) -> tuple[int, bytes]:
        """POST ``body`` to ``url`` signed like a webhook and return the answer's status and
        body (one attempt, no retry).

        Raises :class:`PermissionError` for a non-loopback ``url`` unless external
        webhooks are allowed, :class:`ValueError` for an answer longer than ``limit``
        bytes, and ``aiohttp.ClientError``/``OSError``/``TimeoutError`` when the request
        fails.
        """
        if self._session is None:
            raise RuntimeError("the webhook sender is not started")
        if not self.allow_external and not self._is_local(url):
            raise PermissionError(
                f"{url} is not a loopback address "
                "(Simulator(allow_external_webhooks=True) allows it)"
            )
        headers = {"Content-Type": "application/json"}
        if self.signing_key:
            headers.update(sign(self.signing_key, url, body))
        async with self._session.post(url, data=body, headers=headers) as resp:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(65536):
                size += len(chunk)
                if size > limit:
                    raise ValueError(f"the answer is longer than {limit} bytes")
                chunks.append(chunk)
            return resp.status, b"".join(chunks)

    async def _deliver(self, record: WebhookRecord) -> bool:
        """POST once; True when the webhook should be tried again."""
        assert self._session is not None
        record.attempts += 1
        if not self.allow_external and not self._is_local(record.url):
            # a local space only talks to this machine, so tests never reach the network
            record.outcome = "failed"
            record.error = (
                f"not delivered: {record.url} is not a loopback address "
                "(Simulator(allow_external_webhooks=True) allows it)"
            )
            self._refused_log("webhook %s", record.error)
            return False
        headers = {"Content-Type": "application/json"}
        if self.signing_key:
            headers.update(sign(self.signing_key, record.url, record.body))
        record.headers = headers
        try:
            async with self._session.post(record.url, data=record.body, headers=headers) as resp:
                record.status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            record.status = None
            record.error = f"{type(exc).__name__}: {exc}"
            if record.attempts < self.attempts:
                return True
            record.outcome = "failed"
            _log.debug("webhook to %s failed: %s", record.url, record.error)
            return False
        if record.status >= 500 and record.attempts < self.attempts:
            record.error = f"HTTP {record.status}"
            return True
        if 200 <= record.status < 300:
            record.outcome = "delivered"
            record.error = None
            record.delivered_at = time.monotonic()
        else:
            record.outcome = "failed"
            record.error = f"HTTP {record.status}"
        return False
