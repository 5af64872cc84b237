"""A lean HTTP/1.1 client for one endpoint: keep-alive POSTs over a pool of connections.

The command path posts small JSON bodies to one URL and reads small JSON answers, at up
to thousands of commands a second. aiohttp's general-purpose client spends about half of
the client's CPU per command on machinery this path never uses (cookies, redirects,
middlewares, traces, multipart payloads, a request and a response object graph). This
module does only what the path needs, on asyncio protocols:

- one ``asyncio.Protocol`` per connection, one request in flight on it at a time;
- idle connections reused last-in-first-out and closed after ``keepalive_timeout``;
- TLS through the standard ``ssl`` module (system trust store, or ``ca_file``), with SNI
  and hostname verification;
- responses framed per RFC 9112 section 6: ``Content-Length``, ``chunked``, or (no
  framing) the body runs to the end of the connection; ``1xx`` heads are skipped; a
  ``gzip``/``deflate`` ``Content-Encoding`` is decoded;
- bounded: a head over ``MAX_HEAD`` bytes or a body over ``MAX_BODY`` bytes is a
  ``ProtocolError``, as is anything that is not HTTP/1.x.

Admission (how many requests at once, in which order) is the caller's business: the
``Transport`` admits requests first-in-first-out and never runs more than ``limit`` at
once, so the pool never holds more than ``limit`` connections.

Errors, each an ``OSError`` so callers can catch them with socket errors:
``ConnectFailed`` (the request was not sent), ``ConnectTimeout`` (also a
``TimeoutError``; not sent), ``ConnectionLost`` and ``ProtocolError`` (the request may
have been sent). A response timeout raises the built-in ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import zlib
from collections.abc import Callable
from typing import Final, cast

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionLost",
    "H1Pool",
    "H1Response",
    "ProtocolError",
    "build_request_head",
]

#: Largest response head (status line and headers) accepted, in bytes.
MAX_HEAD: Final = 64 * 1024
#: Largest response body accepted (after decoding chunks), in bytes.
MAX_BODY: Final = 16 * 1024 * 1024

_CRLF: Final = b"\r\n"
_HEAD_END: Final = b"\r\n\r\n"
_NO_BODY_STATUSES: Final = frozenset({204, 304})
_HEX: Final = b"0123456789abcdefABCDEF"

# Body framing of the response being read.
_LENGTH: Final = 0
_CHUNKED: Final = 1
_TO_EOF: Final = 2


class ConnectFailed(OSError):
    """The connection could not be opened (refused, DNS, TLS): nothing was sent."""


class ConnectTimeout(ConnectFailed, TimeoutError):
    """Opening the connection took longer than ``connect_timeout``: nothing was sent."""


class ConnectionLost(OSError):
    """The connection closed before the whole response arrived."""


class ProtocolError(OSError):
    """The peer's bytes are not an acceptable HTTP/1.x response."""


class H1Response:
    """Status, headers (lower-cased names, in order) and body of one response."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def __repr__(self) -> str:
        return f"<H1Response {self.status} {len(self.body)} bytes>"


def build_request_head(
    path: str, host: str, port: int, default_port: int, headers: dict[str, str]
) -> bytes:
    """The constant part of every request's head, up to and including
    ``Content-Length: `` (the caller appends the length, a blank line and the body)."""
    authority = f"[{host}]" if ":" in host else host
    if port != default_port:
        authority = f"{authority}:{port}"
    lines = [f"POST {path} HTTP/1.1", f"Host: {authority}"]
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise ValueError(f"header {name!r}: control characters are not allowed")
        lines.append(f"{name}: {value}")
    lines.append("Content-Length: ")
    return "\r\n".join(lines).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; a response is awaited through ``self.waiter``."""

    __slots__ = (
        "_body",
        "_buf",
        "_codings",
        "_framing",
        "_head",
        "_headers",
        "_keep",
        "_need",
        "_status",
        "closed",
        "idle_since",
        "transport",
        "waiter",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[H1Response] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._head = True  # reading a head (else a body)
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._codings: list[str] = []  # Content-Encoding values, in the order listed
        self._framing = _LENGTH
        self._need = 0  # body bytes still expected (_LENGTH) or of the current chunk
        self._body = bytearray()
        self._keep = True

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, though not always an asyncio.Transport subclass (uvloop)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            # bytes nobody asked for: the connection is out of step, drop it
            self._fail(ProtocolError("data arrived with no request pending"))
            return
        self._buf += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        if self.waiter is not None and not self._head and self._framing == _TO_EOF:
            self._finish_to_eof()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        by_us = self.closed  # abort()/close() from this side: never a clean end of body
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if not self._head and self._framing == _TO_EOF and exc is None and not by_us:
            self._finish_to_eof()  # the body ran to the end (over TLS, eof_received may not run)
        else:
            got = "before any response" if self._head and not self._buf else "mid-response"
            err = ConnectionLost(f"the server closed the connection {got}")
            if exc is not None:
                err.__cause__ = exc
            waiter.set_exception(err)

    # -- requests --------------------------------------------------------------------

    def start(self, data: bytes, waiter: asyncio.Future[H1Response]) -> None:
        assert self.transport is not None
        self.waiter = waiter
        self.transport.write(data)

    def abort(self) -> None:
        """Drop the connection at once (after an error: nothing more is read)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close the connection gracefully (its response was read in full)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _finish_to_eof(self) -> None:
        try:
            self._complete(bytes(self._body), keep=False)
        except ProtocolError as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def _complete(self, body: bytes, *, keep: bool) -> None:
        for coding in reversed(self._codings):  # applied in order listed: undone backwards
            body = _decode_content(coding, body)
        response = H1Response(self._status, self._headers, body)
        keep = keep and self._keep and not self._buf  # left-over bytes: out of step
        waiter, self.waiter = self.waiter, None
        self._reset()
        self._keep = keep
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    @property
    def reusable(self) -> bool:
        transport = self.transport
        return (
            self._keep and not self.closed and transport is not None and not transport.is_closing()
        )

    # -- parsing -----------------------------------------------------------------------

    def _parse(self) -> None:
        buf = self._buf
        while True:
            if self._head:
                end = buf.find(_HEAD_END)
                if end < 0:
                    if len(buf) > MAX_HEAD + 3:  # (a terminator may still complete it)
                        raise ProtocolError(f"response head longer than {MAX_HEAD} bytes")
                    return
                if end > MAX_HEAD:
                    raise ProtocolError(f"response head longer than {MAX_HEAD} bytes")
                head = bytes(buf[:end])
                del buf[: end + 4]
                if not self._read_head(head):
                    continue  # a 1xx head: the real one follows
                if self._framing == _LENGTH and self._need == 0:
                    self._complete(b"", keep=True)
                    return
            elif self._framing == _LENGTH:
                if len(buf) < self._need:
                    return
                body = bytes(buf[: self._need])
                del buf[: self._need]
                self._complete(body, keep=True)
                return
            elif self._framing == _CHUNKED:
                self._read_chunks()
                return
            else:  # _TO_EOF
                self._body += buf
                buf.clear()
                if len(self._body) > MAX_BODY:
                    raise ProtocolError(f"response body longer than {MAX_BODY} bytes")
                return

    def _read_head(self, head: bytes) -> bool:
        """Parse a response head; False for an interim (1xx) one."""
        lines = head.split(_CRLF)
        status_line = lines[0]
        if (
            len(status_line) < 12
            or not status_line.startswith(b"HTTP/1.")
            or status_line[7:8] not in (b"0", b"1")
            or status_line[8:9] != b" "
            or not status_line[9:12].isdigit()
            or (len(status_line) > 12 and status_line[12:13] != b" ")
        ):
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        status = int(status_line[9:12])
        if status < 100:
            raise ProtocolError(f"status {status} is out of range")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            raw_name, sep, raw_value = line.partition(b":")
            if not sep or not raw_name or raw_name != raw_name.strip() or b" " in raw_name:
                raise ProtocolError(f"malformed header line: {line[:80]!r}")
            headers.append(
                (raw_name.decode("latin-1").lower(), raw_value.strip().decode("latin-1"))
            )
        if status < 200:
            return False
        self._status = status
        self._headers = headers
        keep = status_line[7:8] == b"1"  # HTTP/1.1; HTTP/1.0 closes
        length: int | None = None
        chunked = False
        te = False
        for name, value in headers:
            if name == "content-length":
                if not value.isdigit() or not value.isascii():
                    raise ProtocolError(f"bad Content-Length {value!r}")
                n = int(value)
                if length is not None and n != length:
                    raise ProtocolError("conflicting Content-Length headers")
                length = n
            elif name == "transfer-encoding":
                te = True
                chunked = value.rsplit(",", 1)[-1].strip().lower() == "chunked"
            elif name == "connection":
                tokens = {t.strip().lower() for t in value.split(",")}
                if "close" in tokens:
                    keep = False
            elif name == "content-encoding":
                self._codings += [c.strip().lower() for c in value.split(",")]
        self._keep = keep
        self._head = False
        self._body = bytearray()
        if status in _NO_BODY_STATUSES:
            self._framing, self._need = _LENGTH, 0
        elif te:
            if chunked:
                self._framing, self._need = _CHUNKED, -1
            else:
                self._framing = _TO_EOF
                self._keep = False
        elif length is not None:
            if length > MAX_BODY:
                raise ProtocolError(f"response body longer than {MAX_BODY} bytes")
            self._framing, self._need = _LENGTH, length
        else:
            self._framing = _TO_EOF
            self._keep = False
        return True

    def _read_chunks(self) -> bool:
        """Consume chunked body bytes; True once the response completed."""
        buf = self._buf
        while True:
            if self._need == -1:  # expecting a chunk-size line
                end = buf.find(_CRLF)
                if end < 0:
                    if len(buf) > 1024:
                        raise ProtocolError("chunk size line too long")
                    return False
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                if not size_text or len(size_text) > 16 or size_text.strip(_HEX):
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                if size == 0:
                    self._need = -2  # trailers follow
                    continue
                if len(self._body) + size > MAX_BODY:
                    raise ProtocolError(f"response body longer than {MAX_BODY} bytes")
                self._need = size
            elif self._need == -2:  # trailer section, up to an empty line
                end = buf.find(_CRLF)
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError("trailer section too long")
                    return False
                del buf[: end + 2]
                if end == 0:
                    self._complete(bytes(self._body), keep=True)
                    return True
            else:  # chunk data and its CRLF
                need = self._need
                if len(buf) < need + 2:
                    return False
                if buf[need : need + 2] != _CRLF:
                    raise ProtocolError("chunk data not followed by CRLF")
                self._body += buf[:need]
                del buf[: need + 2]
                self._need = -1


def _decode_content(coding: str, body: bytes) -> bytes:
    if coding in ("", "identity") or not body:
        return body
    if coding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif coding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise ProtocolError(f"unsupported Content-Encoding {coding!r}")
    out = _inflate(body, wbits)
    if out is None and coding == "deflate":  # sent as a raw stream, as some servers do
        out = _inflate(body, -zlib.MAX_WBITS)
    if out is None:
        raise ProtocolError(f"the {coding} body is corrupt or cut short")
    return out


def _inflate(body: bytes, wbits: int) -> bytes | None:
    """The whole decompressed stream, or None unless it is complete with nothing after."""
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, MAX_BODY + 1)
    except zlib.error:
        return None
    if len(out) > MAX_BODY:
        raise ProtocolError(f"decompressed body longer than {MAX_BODY} bytes")
    if not d.eof or d.unused_data:
        return None
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class H1Pool:
    """Keep-alive connections to one origin, for POSTs with a fixed head.

    pool = H1Pool("example.signalwire.com", 443, tls=ssl.create_default_context(),
                  head=build_request_head(...))
    response = await pool.post(body, timeout=10.0)
    await pool.aclose()
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        head: bytes,
        tls: ssl.SSLContext | None = None,
        keepalive_timeout: float = 15.0,
        connect_timeout: float | None = 5.0,
        dns_cache_ttl: float | None = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._head = head
        self._tls = tls
        self._keepalive = keepalive_timeout
        self._connect_timeout = connect_timeout
        self._dns_ttl = dns_cache_ttl
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._addresses: list[tuple[int, tuple[str, int]]] | None = None
        self._resolved_at = 0.0
        self._closed = False
        self._sweeper: asyncio.TimerHandle | None = None
        self.opened = 0  # connections opened so far (for tests and stats)

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def busy(self) -> int:
        return len(self._busy)

    async def post(self, body: bytes, timeout: float | None) -> H1Response:
        """Send one POST and return its response. ``timeout`` (seconds, or None) bounds
        everything from here to the last byte, connecting included."""
        if self._closed:
            raise ConnectFailed("the pool is closed")
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = None if timeout is None else now + timeout
        conn = self._take_idle(now)
        if conn is None:
            conn = await self._connect(loop, deadline)
        self._busy.add(conn)
        waiter: asyncio.Future[H1Response] = loop.create_future()
        timer = None if deadline is None else loop.call_at(deadline, _expire, waiter, timeout)
        try:
            conn.start(self._head + b"%d\r\n\r\n" % len(body) + body, waiter)
            response = await waiter
        except BaseException:
            conn.abort()  # timed out, cancelled or broken: never reuse it
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._busy.discard(conn)
        if conn.reusable and not self._closed and self._keepalive > 0:
            conn.idle_since = loop.time()
            self._idle.append(conn)
            if self._sweeper is None:
                self._sweeper = loop.call_later(self._keepalive, self._sweep)
        else:
            conn.close()
        return response

    def _take_idle(self, now: float) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if self._fresh(conn, now):
                return conn
            conn.abort()
        return None

    def _fresh(self, conn: _Connection, now: float) -> bool:
        """Still worth reusing: open, in step and idle for less than the keep-alive time."""
        return conn.reusable and now - conn.idle_since < self._keepalive

    def _sweep(self) -> None:
        """Close connections idle longer than the keep-alive timeout."""
        self._sweeper = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        keep = [c for c in self._idle if self._fresh(c, now)]
        for c in self._idle:
            if c not in keep:
                c.abort()
        self._idle = keep
        if keep:
            oldest = min(c.idle_since for c in keep)
            self._sweeper = loop.call_at(oldest + self._keepalive, self._sweep)

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple[str, int]]]:
        if _is_ip(self._host):
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            return [(family, (self._host, self._port))]
        now = loop.time()
        cached = self._addresses
        if cached is not None and (
            self._dns_ttl is None or now - self._resolved_at < self._dns_ttl
        ):
            return cached
        infos = await loop.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses: list[tuple[int, tuple[str, int]]] = [
            (int(family), (str(sa[0]), int(sa[1]))) for family, _, _, _, sa in infos
        ]
        if not addresses:
            raise OSError(f"no address for {self._host}")
        if self._dns_ttl != 0:
            self._addresses, self._resolved_at = addresses, now
        return addresses

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> _Connection:
        limit = self._connect_timeout
        if deadline is not None:
            left = deadline - loop.time()
            limit = left if limit is None else min(limit, left)
        try:
            async with asyncio.timeout(limit):
                return await self._open(loop)
        except TimeoutError as exc:
            if isinstance(exc, ConnectFailed):
                raise
            raise ConnectTimeout(
                f"connecting to {self._host}:{self._port} took longer than {limit:.3g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            if isinstance(exc, ConnectFailed):
                raise
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        error: BaseException | None = None
        for family, address in await self._resolve(loop):
            try:
                _, conn = await loop.create_connection(
                    _Connection,
                    address[0],
                    address[1],
                    family=family,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls is not None else None,
                )
            except OSError as exc:  # refused here: try the next address
                error = exc
                continue
            if self._closed:
                conn.abort()
                raise ConnectFailed("the pool was closed while connecting")
            self.opened += 1
            return conn
        assert error is not None
        if isinstance(error, ssl.SSLError | ssl.CertificateError):
            raise error
        self._addresses = None  # every address failed: resolve again next time
        raise error

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail with ``ConnectionLost``."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in self._idle:
            conn.abort()
        self._idle.clear()
        for conn in list(self._busy):
            conn.abort()
        await asyncio.sleep(0)  # let the transports run connection_lost


def _expire(waiter: asyncio.Future[H1Response], timeout: float | None) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"no complete response within {timeout} s"))
