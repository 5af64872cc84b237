"""Child processes of a test, never left behind: a test that fails or times out while
one runs kills it (and reaps it) before it goes on."""

from __future__ import annotations

import asyncio


async def communicate(proc: asyncio.subprocess.Process, timeout: float) -> tuple[bytes, bytes]:
    """``proc.communicate()`` within ``timeout`` seconds; a process still running after
    it (the test failed or timed out) is killed, so no test leaves one behind."""
    try:
        async with asyncio.timeout(timeout):
            return await proc.communicate()
    finally:
        await kill(proc)


async def kill(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` if it still runs, and wait for it."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
