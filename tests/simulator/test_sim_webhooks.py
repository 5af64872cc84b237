"""Webhook delivery: signatures, retries, ordering, introspection."""

from __future__ import annotations

import hashlib
import hmac

import aiohttp

from signalwire_calls import _signing
from signalwire_calls.testing import Simulator

from .helpers import Client, Receiver


def hmac_hex(key: str, message: bytes, digest: str) -> str:
    return hmac.new(key.encode(), message, getattr(hashlib, digest)).hexdigest()


def test_signing_matches_spec_vectors() -> None:
    # Spec 6.4 (a): the published platform vector.
    key_a = "PSK_7TruNcSNTxp4zNrykMj4EPzF"
    url_a = "https://81f2-2-45-18-191.ngrok-free.app/"
    body_a = (
        b'{"call":{"call_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","node_id":'
        b'"fa3570ae-f8bd-42c2-83f4-9950d906c91b@us-west","segment_id":'
        b'"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","call_state":"created","direction":"inbound",'
        b'"type":"phone","from":"+12135877632","to":"+12089806814","from_number":"+12135877632",'
        b'"to_number":"+12089806814","project_id":"4b7ae78a-d02e-4889-a63b-08b156d5916e",'
        b'"space_id":"62615f44-2a34-4235-b38b-76b5a1de6ef8"},"vars":{}}'
    )
    headers = _signing.sign(key_a, url_a, body_a)
    assert headers["X-SignalWire-Signature"] == "b18500437ebb010220ddd770cbe6fd531ea0ba0d"
    assert headers["X-SignalWire-SHA256-Signature"] == (
        "e6cbf7dcd30152e9034464d4de0f1050893dc482c5f303d73c86d050407b294f"
    )
    assert hmac_hex(key_a, url_a.encode() + body_a, "sha1") == headers["X-SignalWire-Signature"]
    # Spec 6.4 (b).
    key_b, url_b = "PSK_test_signing_key_123", "https://example.com/sw/status?leg=a"
    body_b = (
        b'{"event_type":"calling.call.play","params":{"call_id":'
        b'"3fa85f64-5717-4562-b3fc-2c963f66afa6","control_id":"play-1","state":"finished"}}'
    )
    headers = _signing.sign(key_b, url_b, body_b)
    assert headers["X-SignalWire-Signature"] == "45cd010d5be48d63e0590c1692dc5cac5047e495"
    assert headers["X-SignalWire-SHA256-Signature"] == (
        "4e0077f6f7fa2e09ee9c2717f0c138d2f0c1b15bbe6813c899721225818eed66"
    )
    assert _signing.sign(key_b, url_b, b"")["X-SignalWire-Signature"] == (
        "917f7bbfef7dd1db90269bf526e3815a81806b3e"
    )


async def test_webhooks_are_signed_over_exact_url_and_body(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    url = receiver.url("/sw/status?leg=a&x=1")
    call_id = await client.answered_call(status_url=url)
    await client.ok("calling.end", {}, call_id)
    await sim.wait_for_call_state(call_id, "ended")
    await sim.wait_for_webhooks_idle()
    assert len(receiver.hits) == 4
    for hit in receiver.hits:
        assert hit.url == url
        message = url.encode() + hit.body
        assert hit.headers["X-SignalWire-Signature"] == hmac_hex(
            "test-signing-key", message, "sha1"
        )
        assert hit.headers["X-SignalWire-SHA256-Signature"] == hmac_hex(
            "test-signing-key", message, "sha256"
        )
        assert hit.headers["Content-Type"] == "application/json"
    records = sim.webhooks_for(call_id=call_id)
    assert [r.outcome for r in records] == ["delivered"] * 4
    assert [r.status for r in records] == [200] * 4
    assert records[0].body == receiver.hits[0].body


async def test_unsigned_without_signing_key(receiver: Receiver) -> None:
    async with Simulator(time_scale=0.01, signing_key=None) as sim, aiohttp.ClientSession() as s:
        client = Client(sim, s)
        call_id = await client.answered_call(status_url=receiver.url())
        await sim.wait_for_webhooks_idle()
    assert receiver.hits
    assert "X-SignalWire-Signature" not in receiver.hits[0].headers
    assert call_id


async def test_retry_on_5xx_then_delivered(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    call_id = await client.dial(status_url=receiver.url(), events=["created"])
    record = await sim.wait_for_webhook("calling.call.state", call_id=call_id)
    assert record.outcome == "delivered"
    assert record.attempts == 3
    assert len(receiver.hits) == 1


async def test_receiver_down_fails_after_bounded_attempts(client: Client, sim: Simulator) -> None:
    dead = Receiver()
    await dead.start()
    url = dead.url()
    await dead.stop()
    call_id = await client.dial(status_url=url, events=["created"])
    record = await sim.wait_for_webhook("calling.call.state", call_id=call_id)
    assert record.outcome == "failed"
    assert record.attempts == 4
    assert record.error is not None


async def test_4xx_is_not_retried(client: Client, sim: Simulator, receiver: Receiver) -> None:
    receiver.answer_status = 404
    call_id = await client.dial(status_url=receiver.url(), events=["created"])
    record = await sim.wait_for_webhook("calling.call.state", call_id=call_id)
    assert (record.outcome, record.attempts, record.status) == ("failed", 1, 404)


async def test_events_of_one_operation_stay_in_order(
    client: Client, sim: Simulator, receiver: Receiver
) -> None:
    receiver.fail_first = 1  # the first event is retried; later ones must wait behind it
    call_id = await client.answered_call()
    silence = {"type": "silence", "params": {"duration": 1000}}
    await client.ok(
        "calling.play",
        {"control_id": "p", "play": [silence], "status_url": receiver.url()},
        call_id,
    )
    for sub in ("pause", "resume", "pause", "resume", "stop"):
        await client.ok(f"calling.play.{sub}", {"control_id": "p"}, call_id)
    await sim.wait_for_operation(call_id, "p")
    await sim.wait_for_webhooks_idle()
    assert receiver.states("p") == [
        "playing",
        "paused",
        "playing",
        "paused",
        "playing",
        "finished",
    ]


async def test_many_concurrent_calls(receiver: Receiver) -> None:
    async with (
        Simulator(time_scale=0.001, webhook_concurrency=8, cps=None) as sim,
        aiohttp.ClientSession() as s,
    ):
        client = Client(sim, s)
        ids = [await client.dial(status_url=receiver.url(f"/c{i}")) for i in range(50)]
        for call_id in ids:
            await sim.wait_for_call_state(call_id, "answered")
            await client.ok("calling.end", {}, call_id)
        for call_id in ids:
            await sim.wait_for_call_state(call_id, "ended")
        await sim.wait_for_webhooks_idle()
    assert len(receiver.hits) == 200
    for i, call_id in enumerate(ids):
        states = [h.json["params"]["call_state"] for h in receiver.hits if h.url.endswith(f"/c{i}")]
        assert states == ["created", "ringing", "answered", "ended"], call_id


async def test_webhooks_to_non_loopback_hosts_are_not_sent() -> None:
    import aiohttp

    from signalwire_calls.testing import Simulator as _Simulator

    async with _Simulator(time_scale=0.01) as local_sim, aiohttp.ClientSession() as http:
        body = {
            "command": "dial",
            "params": {
                "from": "+15559870000",
                "to": "+15550100001",
                "url": "https://example.com/swml",
                "status_url": "https://hooks.example.com/x",
                "status_events": ["created"],
            },
        }
        headers = {"Authorization": local_sim.auth_header}
        async with http.post(local_sim.url, json=body, headers=headers) as resp:
            assert resp.status == 200
        record = await local_sim.wait_for(
            lambda: next((w for w in local_sim.webhooks if w.outcome == "failed"), None)
        )
        assert record.url == "https://hooks.example.com/x"
        assert record.status is None
        assert record.error is not None
        assert "not a loopback address" in record.error
