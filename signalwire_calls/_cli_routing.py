"""``signalwire-calls receiver`` (a stateless webhook receiver forwarding every webhook to
its owner through Redis) and ``signalwire-calls dlq`` (the dead-lettered webhooks)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime

from ._cli_serve import cannot_listen, fail, stop_on_signals

__all__ = ["add_dlq", "add_receiver"]


def add_receiver(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``receiver`` subcommand."""
    parser = subparsers.add_parser(
        "receiver",
        help="a stateless webhook receiver forwarding every webhook to its owner via Redis",
        description="Serve a webhook receiver until SIGINT or SIGTERM: it verifies each "
        "webhook's signature and forwards it, through Redis, to the session that owns it "
        "(named by swc_owner in its URL), or dead-letters it when that session is gone; "
        "503 while Redis cannot take it. Prints 'signalwire receiver listening on <URL>' "
        "once it accepts requests.",
    )
    parser.add_argument(
        "--redis",
        required=True,
        metavar="URL",
        help="Redis URL, e.g. redis://host:6379/0 (a password in it is never printed)",
    )
    parser.add_argument(
        "--signing-key",
        default=os.environ.get("SIGNALWIRE_SIGNING_KEY"),
        help="the project's signing key (default: $SIGNALWIRE_SIGNING_KEY)",
    )
    parser.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="accept webhooks without checking signatures (anyone could forge results)",
    )
    parser.add_argument(
        "--public-url",
        default=os.environ.get("SIGNALWIRE_PUBLIC_URL"),
        metavar="URL",
        help="the base URL the platform calls (the load balancer's), which signatures "
        "cover (default: $SIGNALWIRE_PUBLIC_URL; else the URL this server sees)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--path", default="/signalwire/events", help="the webhook route")
    parser.set_defaults(func=_run_receiver)


async def _run_receiver(args: argparse.Namespace) -> int:
    from ._bus_redis import RedisBus
    from .errors import ConfigurationError
    from .receiver import ReceiverSettings

    if not args.signing_key and not args.allow_unsigned:
        return fail(
            "--signing-key: required (or $SIGNALWIRE_SIGNING_KEY); --allow-unsigned "
            "accepts forged webhooks"
        )
    try:
        settings = ReceiverSettings(
            path=args.path,
            public_url=args.public_url or None,
            signing_key=args.signing_key or None,
        )
        bus = RedisBus(args.redis)
    except ConfigurationError as exc:
        return fail(str(exc))
    try:
        await bus.open()
    except OSError as exc:
        return fail(str(exc))
    try:
        receiver = bus.receiver(settings, host=args.host, port=args.port)
        try:
            await receiver.start()
        except ConfigurationError as exc:
            return fail(str(exc))
        except OSError as exc:
            return cannot_listen(exc, args.host, args.port)
        try:
            with stop_on_signals() as stop:
                print(f"signalwire receiver listening on {receiver.url}", flush=True)
                await stop.wait()
        finally:
            await receiver.aclose()
        stats = receiver.stats()
        print(
            f"signalwire receiver stopped: {stats.received} received, {stats.forwarded} "
            f"forwarded, {bus.stats().dead_lettered} dead-lettered, "
            f"{stats.rejected_unavailable} refused with 503",
            flush=True,
        )
        return 0
    finally:
        await bus.aclose()


def add_dlq(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``dlq`` subcommand."""
    parser = subparsers.add_parser(
        "dlq",
        help="list the webhooks dead-lettered by receivers (their owner was gone)",
        description="Print how many webhooks were dead-lettered in all, then the newest "
        "--limit of them still in the stream, oldest first: id, received (UTC), reason, "
        "owner, event type, call id.",
    )
    parser.add_argument(
        "--redis",
        required=True,
        metavar="URL",
        help="Redis URL, e.g. redis://host:6379/0 (a password in it is never printed)",
    )
    parser.add_argument("--limit", type=int, default=20, help="entries to list (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=_run_dlq)


def _summary(body: bytes) -> tuple[str, str]:
    """The event type and call id of a webhook body, or '?'."""
    try:
        data = json.loads(body)
        params = data.get("params") or {}
        return str(data.get("event_type", "?")), str(params.get("call_id", "?"))
    except (ValueError, AttributeError):
        return "?", "?"


async def _run_dlq(args: argparse.Namespace) -> int:
    from ._bus_redis import RedisBus
    from .errors import ConfigurationError

    if args.limit < 0:
        return fail("--limit: must be >= 0")
    try:
        bus = RedisBus(args.redis)
    except ConfigurationError as exc:
        return fail(str(exc))
    try:
        await bus.open()
        total, letters = await bus.dead_letters(args.limit)
    except OSError as exc:
        return fail(str(exc))
    finally:
        await bus.aclose()
    if not args.json:
        newest = f"; the newest {len(letters)}:" if letters else ""
        print(f"{total} webhook(s) dead-lettered in all{newest}")
    for letter in letters:
        event_type, call_id = _summary(letter.body)
        if args.json:
            print(
                json.dumps(
                    {
                        "id": letter.id,
                        "received": letter.received,
                        "reason": letter.reason,
                        "owner": letter.owner,
                        "receiver": letter.receiver,
                        "event_type": event_type,
                        "call_id": call_id,
                        "body": letter.body.decode(errors="replace"),
                    }
                )
            )
        else:
            when = datetime.fromtimestamp(letter.received, UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{letter.id}  {when}  {letter.reason:<10}  owner={letter.owner or '-'}  "
                f"{event_type}  call={call_id}"
            )
    return 0
