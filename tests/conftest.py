"""Fixtures shared by every test package: a real redis-server of the test's own."""

from __future__ import annotations

from .redis_server import redis_server

__all__ = ["redis_server"]
