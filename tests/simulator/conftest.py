"""Fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from signalwire_calls.testing import Simulator

from .helpers import TIME_SCALE, Client, Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(time_scale=TIME_SCALE, webhook_backoff=0.5) as s:
        yield s


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(sim, session)
