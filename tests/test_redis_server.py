"""The Redis test fixture itself: a real server of the test's own, restartable."""

from __future__ import annotations

import socket

import pytest

from .redis_server import RedisServer


def _ping(server: RedisServer) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16)


def test_the_fixture_runs_its_own_server_and_restarts_it(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    assert _ping(redis_server).startswith(b"+PONG")
    redis_server.stop()
    with pytest.raises(ConnectionRefusedError):
        _ping(redis_server)
    redis_server.start()
    assert _ping(redis_server).startswith(b"+PONG")
