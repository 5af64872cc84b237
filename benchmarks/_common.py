"""Helpers shared by the benchmark workers and the runner (not part of the library).

Every worker prints its result as one line ``BENCH-RESULT {json}`` on stdout; servers
print ``BENCH-READY {json}`` once they accept connections. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"
PROJECT = "bench-project"
TOKEN = "bench-token"
SIGNING_KEY = "bench-signing-key"
RESULT = "BENCH-RESULT "
READY = "BENCH-READY "
EVENT_PATH = "/signalwire/events"

#: The fixed call leg the fast server answers to every command.
LEG_BODY = (
    b'{"id":"c0ffee00-0000-4000-8000-000000000001","from":"+15559870000",'
    b'"to":"+15551230001","direction":"outbound-api","status":"answered",'
    b'"type":"relay_pstn_call","created_at":"2025-01-01T00:00:00Z","charge":0.0,'
    b'"charge_details":[]}'
)
CALL_ID = "c0ffee00-0000-4000-8000-000000000001"

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int) -> float | None:
    """User+system CPU seconds of process ``pid`` (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident set size of a process (default: this one), from /proc."""
    try:
        with open(f"/proc/{pid or 'self'}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) by nearest rank, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return float(ordered[k])


def emit(obj: dict[str, Any]) -> None:
    print(RESULT + json.dumps(obj), flush=True)


def ready(obj: dict[str, Any]) -> None:
    print(READY + json.dumps(obj), flush=True)


def run_loop(main: Callable[[], Coroutine[Any, Any, Any]], loop_kind: str) -> Any:
    """Run ``main()`` on the stdlib loop or on uvloop."""
    if loop_kind == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONASYNCIODEBUG", None)
    if extra:
        env.update(extra)
    return env


class Child:
    """A worker or server process with a hard deadline; always killed on exit."""

    def __init__(
        self,
        script: str,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdin: bool = False,
        prefix: Sequence[str] = (),
    ) -> None:
        self.cmd = [*prefix, sys.executable, os.path.join(HERE, script), *args]
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env=python_env(env),
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Read stdout until the READY line (servers)."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(READY):
                return dict(json.loads(line[len(READY) :]))
            if "listening on" in line:  # the simulator's own CLI line
                return {"url": line.rsplit(" ", 1)[-1].strip()}
        err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
        self.kill()
        raise RuntimeError(f"{self.cmd[1:3]} did not become ready: {err[-2000:]}")

    def result(self, timeout: float) -> dict[str, Any]:
        """Wait for the worker to finish and return its RESULT object."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.cmd[1:3]} exceeded {timeout:.0f} s") from None
        for line in reversed(out.splitlines()):
            if line.startswith(RESULT):
                return dict(json.loads(line[len(RESULT) :]))
        raise RuntimeError(
            f"{self.cmd[1:]} gave no result (rc={self.proc.returncode}): {err[-3000:]}"
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


# --------------------------------------------------------------------------- raw HTTP


class RawConnection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection with one request in flight.

    The load generator uses it so that the sending side costs little CPU (about a
    fifth of an aiohttp client) and the receiver under test is the bottleneck.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            length = 0
            pos = head.find(b"content-length:")
            if pos >= 0:
                stop = head.find(b"\r\n", pos)
                length = int(head[pos + 15 : stop if stop >= 0 else None])
            total = end + 4 + length
            if len(buf) < total:
                return
            status = int(head[9:12])
            del buf[:total]
            w = self.waiter
            self.waiter = None
            if w is not None and not w.done():
                w.set_result(status)

    def request(self, raw: bytes) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiter = fut
        assert self.transport is not None
        self.transport.write(raw)
        return fut


async def raw_connect(port: int) -> RawConnection:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(RawConnection, HOST, port)
    return proto


def raw_post(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    for k, v in (headers or {}).items():
        head.append(f"{k}: {v}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_redis(directory: str, needed_by: str) -> tuple[subprocess.Popen[bytes], str]:
    """A ``redis-server`` of the benchmark's own on a free loopback port (never the
    machine's shared one), and its URL; ``needed_by`` names the benchmark if it is
    missing."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit(f"{needed_by} needs redis-server (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
         "no", "--dir", directory, "--protected-mode", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")
