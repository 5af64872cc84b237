"""Inbound calls: the simulator calls an application's SWML URL and runs what it answers.

The request is the platform's SWML fetch: a signed JSON POST (both signature headers
over ``url + raw body``) of ``{"call": {...}, "vars": {}}`` describing a new inbound
phone call in state ``created``. The reply must be an SWML JSON document; the simulator
runs the steps of its ``main`` section from this subset:

* ``answer`` (``{}`` or ``{"max_duration": seconds}``)
* ``sleep`` (milliseconds, as a number or ``{"duration": ms}``; ``-1`` sleeps forever)
* ``play`` (``{"url": sound}`` or ``{"urls": [sound, ...]}``, optional ``auto_answer``
  (default true); a sound is ``say:<text>``, ``silence:<seconds>``,
  ``ring:[<seconds>:]<country>`` or an http(s) audio URL)
* ``hangup`` (``{}`` or ``{"reason": ...}``)

and hangs up when ``main`` runs out, as the platform does. Anything else (another
method, a document that is not JSON, a non-2xx answer, an unreachable URL) fails the
call: the reason is kept in ``SimCall.swml_error`` and logged as a warning.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from ._callees import Callee
from ._model import ACTIVE_STATES, SimCall
from ._op_play import TTS_CHARS_PER_SECOND

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["SWML_METHODS", "SwmlError", "inbound_request_body", "parse_swml", "place_inbound"]

SWML_METHODS = ("answer", "sleep", "play", "hangup")
MAX_SWML_BYTES = 1024 * 1024
ONE_RING = 2.0  # simulated seconds of a ``ring:<country>`` sound without a duration

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class SwmlError(ValueError):
    """An SWML document the simulator cannot run; the message says where and why."""


async def place_inbound(
    engine: Engine, *, from_: str, to: str, url: str, callee: Callee | None
) -> SimCall:
    """Create the inbound call, fetch its SWML from ``url`` and start running it."""
    call = engine.new_inbound(from_=from_, to=to, url=url, callee=callee)
    body = inbound_request_body(
        call_id=call.id,
        node_id=call.node_id,
        segment_id=call.segment_id,
        from_=from_,
        to=to,
        project_id=engine.project,
        space_id=engine.space_id,
    )
    try:
        status, reply = await engine.sender.post_signed(url, body, limit=MAX_SWML_BYTES)
    except PermissionError as exc:
        engine.fail_inbound(call, f"SWML request not sent: {exc}")
        return call
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError, RuntimeError) as exc:
        if not engine.closed:  # a space shutting down fails nothing loudly
            engine.fail_inbound(call, f"SWML request to {url} failed: {type(exc).__name__}: {exc}")
        return call
    if call.status not in ACTIVE_STATES or engine.closed:  # hung up (or shut down) meanwhile
        return call
    if not 200 <= status < 300:
        engine.fail_inbound(call, f"SWML request to {url} answered HTTP {status}")
        return call
    try:
        steps = parse_swml(_decode(reply))
    except msgspec.DecodeError:
        engine.fail_inbound(call, f"the answer of {url} is not a JSON SWML document")
        return call
    except SwmlError as exc:
        engine.fail_inbound(call, f"the SWML of {url} cannot run: {exc}")
        return call
    call.swml = tuple(steps)
    run_swml(engine, call)
    return call


def inbound_request_body(
    *,
    call_id: str,
    node_id: str,
    segment_id: str,
    from_: str,
    to: str,
    project_id: str,
    space_id: str,
) -> bytes:
    """The JSON body of the platform's SWML request for a new inbound phone call (what
    ``place_inbound`` POSTs, signed with both signature headers over ``url + body``)."""
    return _encode(
        {
            "call": {
                "call_id": call_id,
                "node_id": node_id,
                "segment_id": segment_id,
                "call_state": "created",
                "direction": "inbound",
                "type": "phone",
                "from": from_,
                "to": to,
                "from_number": from_,
                "to_number": to,
                "headers": [],
                "project_id": project_id,
                "space_id": space_id,
            },
            "vars": {},
        }
    )


# ---------------------------------------------------------------------------- reading


def parse_swml(document: Any) -> list[tuple[str, Any]]:
    """The ``main`` steps of an SWML document as ``(method, checked argument)`` pairs."""
    if not isinstance(document, dict):
        raise SwmlError("the document is not a JSON object")
    sections = document.get("sections")
    main = sections.get("main") if isinstance(sections, dict) else None
    if not isinstance(main, list):
        raise SwmlError("sections.main: missing or not a list")
    steps: list[tuple[str, Any]] = []
    for index, raw in enumerate(main):
        where = f"sections.main[{index}]"
        name: Any
        value: Any
        if isinstance(raw, str):
            name, value = raw, {}
        elif isinstance(raw, dict) and len(raw) == 1:
            ((name, value),) = raw.items()
        else:
            raise SwmlError(f"{where}: a step must be one {{method: params}} object")
        if name not in SWML_METHODS:
            raise SwmlError(
                f"{where}: unsupported SWML method {name!r} "
                f"(the simulator runs {', '.join(SWML_METHODS)})"
            )
        steps.append((name, _CHECKS[name](value, f"{where}.{name}")))
    return steps


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _params(value: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SwmlError(f"{where}: must be an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise SwmlError(f"{where}.{unknown[0]}: not a parameter the simulator knows")
    return value


def _check_answer(value: Any, where: str) -> float | None:
    params = _params(value, where, frozenset(("max_duration", "codecs", "username", "password")))
    limit = params.get("max_duration")
    if limit is not None and (not _number(limit) or limit <= 0):
        raise SwmlError(f"{where}.max_duration: must be a number of seconds > 0")
    return float(limit) if limit is not None else None


def _check_sleep(value: Any, where: str) -> float:
    ms: Any = value.get("duration") if isinstance(value, dict) else value
    if isinstance(value, dict):
        _params(value, where, frozenset(("duration",)))
        where += ".duration"
    if not _number(ms) or (ms < 0 and ms != -1):
        raise SwmlError(f"{where}: must be milliseconds >= 0, or -1 (forever)")
    return math.inf if ms == -1 else float(ms) / 1000.0


_PLAY_PARAMS = frozenset(
    ("url", "urls", "auto_answer", "volume", "say_voice", "say_language", "say_gender")
)


def _check_play(value: Any, where: str) -> tuple[list[str], bool]:
    params = _params(value, where, _PLAY_PARAMS)
    if ("url" in params) == ("urls" in params):
        raise SwmlError(f"{where}: give exactly one of url and urls")
    urls = [params["url"]] if "url" in params else params["urls"]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise SwmlError(f"{where}.urls: must be a non-empty list of strings")
    for i, sound in enumerate(urls):
        _sound_seconds(sound, {}, f"{where}.urls[{i}]")
    auto = params.get("auto_answer", True)
    if not isinstance(auto, bool):
        raise SwmlError(f"{where}.auto_answer: must be a boolean")
    return urls, auto


def _check_hangup(value: Any, where: str) -> str:
    params = _params(value, where, frozenset(("reason",)))
    reason = params.get("reason", "hangup")
    if not isinstance(reason, str):
        raise SwmlError(f"{where}.reason: must be a string")
    return reason


_CHECKS: dict[str, Any] = {
    "answer": _check_answer,
    "sleep": _check_sleep,
    "play": _check_play,
    "hangup": _check_hangup,
}


def _sound_seconds(sound: str, audio_lengths: dict[str, float], where: str) -> float:
    scheme, _, rest = sound.partition(":")
    if scheme == "say":
        return max(0.3, len(rest) / TTS_CHARS_PER_SECOND)
    if scheme == "silence":
        try:
            return max(0.0, float(rest))
        except ValueError:
            raise SwmlError(f"{where}: silence:<seconds> needs a number") from None
    if scheme == "ring":
        duration, _, country = rest.rpartition(":")
        if not country:
            raise SwmlError(f"{where}: ring:[<seconds>:]<country> needs a country code")
        try:
            return float(duration) if duration else ONE_RING
        except ValueError:
            raise SwmlError(f"{where}: ring:<seconds>:<country> needs a number") from None
    if scheme in ("http", "https"):
        return float(audio_lengths.get(sound, 3.0))
    raise SwmlError(f"{where}: {sound!r} is not a playable sound")


# ---------------------------------------------------------------------------- running


def run_swml(engine: Engine, call: SimCall) -> None:
    """Run the call's SWML from its current step until a step takes time (on the call's
    timers, so ending the call stops it); past the last step the call hangs up.

    While a step takes time the call takes REST commands like any other, and the
    operations they start run alongside it. The platform does not document this
    interplay; it is our reading of how an SWML ``sleep`` leaves the call to the API.
    """
    while call.status in ACTIVE_STATES and call.swml_step < len(call.swml):
        name, arg = call.swml[call.swml_step]
        call.swml_step += 1
        if name == "answer":
            engine.answer(call)
            if arg is not None:
                engine.later(call.timers, arg, engine.end, call, "max_duration")
        elif name == "hangup":
            engine.end(call, arg)
            return
        elif name == "sleep":
            if math.isfinite(arg):
                engine.later(call.timers, arg, run_swml, engine, call)
            return
        else:  # play
            urls, auto_answer = arg
            if auto_answer:
                engine.answer(call)
            seconds = sum(_sound_seconds(u, engine.audio_lengths, "") for u in urls)
            engine.later(call.timers, seconds, run_swml, engine, call)
            return
    if call.status in ACTIVE_STATES:
        engine.end(call, "hangup")
