"""``Call``: one call leg, a method per command, and its call state from webhooks.

call = await session.dial(to="+15551230001", from_="+15559870000", url=SWML_URL)
await call.answered()
play = await call.play(tts("Hello"))
await play.finished()
await call.end()
reason = await call.ended()

A ``Call`` belongs to the session that made it; everything it sends, and every
operation it starts, goes through the one narrow interface it has to its owner
(``CallOwner``), which registers handles, sends, routes events and settles.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Final, Literal, Protocol, TypeVar, overload

import msgspec

from . import commands as _cmd
from ._transport import DEFAULT, TimeoutArg
from .commands import _opt  # None means "leave it out", as in the factories
from .errors import CallEndedError, HandleStateError, SessionClosedError, WaitTimeout
from .events import CallStateEvent, Event, describe_event
from .handles import (
    KIND_BY_START,
    CollectHandle,
    DetectHandle,
    EventLog,
    OperationHandle,
    OperationKind,
    PlayHandle,
    RecordHandle,
    StreamHandle,
    TapHandle,
    TranscribeHandle,
    follow,
)
from .legs import AnyLeg

__all__ = ["Call", "CallOwner"]

H = TypeVar("H", bound=OperationHandle[Any])

_ORDER: Final = {"queued": 0, "created": 1, "ringing": 2, "answered": 3, "ending": 4, "ended": 5}


class CallOwner(Protocol):
    """What a ``Call`` (and its handles, through it) asks of the core that owns it."""

    @property
    def status_url(self) -> str: ...

    @property
    def wait_timeout(self) -> float | None: ...

    def new_control_id(self) -> str: ...

    def correlated_status_url(self, given: object) -> str: ...

    def send(
        self, call: Call, cmd: _cmd.Command, request_timeout: TimeoutArg
    ) -> Awaitable[AnyLeg]: ...

    def start(
        self, call: Call, kind: OperationKind, cmd: Any, request_timeout: TimeoutArg
    ) -> Awaitable[OperationHandle[Any]]: ...

    def pending(self, call: Call) -> list[OperationHandle[Any]]: ...


class Call:
    """One call leg. Created by ``CallSession.dial``, ``CallSession.call(call_id)`` or an
    inbound call handed to ``on_inbound``.

    ``state`` follows the call-state webhooks (``created``, ``ringing``, ``answered``,
    ``ending``, ``ended``); ``answered()`` and ``ended()`` wait for them. Every command
    method fills in ``control_id`` and ``status_url`` itself and, for long-running
    operations, returns a handle that is registered before the command is sent. A
    command on a call known to have ended raises ``CallEndedError`` without a request
    (``end()`` then simply returns).

    Producer side (the session's core): ``apply(event)`` feeds a call-state or refer
    event, ``mark_ended(reason)`` ends the call when the library learns it otherwise
    (a 404, a lost ``ended`` webhook), ``close()`` settles waiters when the session
    closes.
    """

    __slots__ = (
        "_answered",
        "_closed",
        "_ended",
        "_followed",
        "_log",
        "_owner",
        "_was_answered",
        "direction",
        "end_reason",
        "id",
        "leg",
        "state",
    )

    def __init__(
        self,
        owner: CallOwner,
        call_id: str,
        leg: AnyLeg | None = None,
        *,
        followed: bool = True,
        direction: Literal["outbound", "inbound", "attached"] = "outbound",
        answered: bool = False,
    ) -> None:
        self._owner = owner
        self.id = call_id
        self.leg = leg
        self.direction = direction
        status = getattr(leg, "status", None) if leg is not None else None
        self.state: str = "answered" if answered else (status or "queued")
        self.end_reason: str | None = None
        self._answered: asyncio.Future[None] | None = None
        self._was_answered = self.state == "answered"
        self._ended: asyncio.Future[None] | None = None
        self._log: EventLog | None = None
        self._closed = False
        self._followed = followed

    def __repr__(self) -> str:
        return (
            f"<Call id={self.id!r} {self.direction} state={self.state!r} "
            f"pending_operations={len(self.pending)}>"
        )

    # -- state ------------------------------------------------------------------------

    @property
    def is_ended(self) -> bool:
        """True once the call ended (an ``ended`` webhook, a 404, or the library ended it
        because its ``ended`` webhook was lost)."""
        return self.state == "ended"

    @property
    def followed(self) -> bool:
        """Whether the session receives this call's call-state webhooks (dialled with
        correlation); ``False`` for ``correlate=False`` dials, attached and inbound calls."""
        return self._followed and self.direction == "outbound"

    @property
    def was_answered(self) -> bool:
        """True once the call has been answered (also after it ended)."""
        return self._was_answered

    @property
    def pending(self) -> list[OperationHandle[Any]]:
        """The operations still pending on this call."""
        return self._owner.pending(self)

    @property
    def wait_timeout(self) -> float | None:
        """The session's default for waits given no ``timeout`` (``None``: none)."""
        return self._owner.wait_timeout

    @property
    def last_event(self) -> Event | None:
        """The last call-state (or refer) event seen."""
        log = self._log
        return log.history[-1] if log is not None and log.history else None

    # -- producer side -----------------------------------------------------------------

    def apply(self, event: Event) -> bool:
        """Apply a call-state or refer event; ``False`` for a duplicate. An ``ended``
        event ends the call (see ``mark_ended``)."""
        log = self._log
        if log is None:
            log = self._log = EventLog()
        if not log.add(event):
            return False
        if isinstance(event, CallStateEvent):
            state = event.params.call_state
            if state == "ended":
                self.mark_ended(event.params.end_reason)
            elif state is not None and not self.is_ended:
                # a late "ringing" after "answered" does not move the state back
                if _ORDER.get(state, 0) >= _ORDER.get(self.state, 0):
                    self.state = state
                if state == "answered":
                    self._was_answered = True
                    _resolve(self._answered)
        return True

    def mark_ended(self, reason: str | None) -> bool:
        """End the call: resolve ``ended()`` (and ``answered()``, which then raises
        ``CallEndedError`` unless the call was answered), close ``events()``. Returns
        whether it ended now."""
        if self.is_ended:
            return False
        self.state = "ended"
        self.end_reason = reason
        _resolve(self._answered)
        _resolve(self._ended)
        if self._log is not None:
            self._log.close()
        return True

    def close(self) -> None:
        """The session closed: waiters of ``answered()``/``ended()`` get
        ``SessionClosedError``."""
        self._closed = True
        err = SessionClosedError(f"the session closed while call {self.id!r} was live")
        for fut in (self._answered, self._ended):
            if fut is not None and not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved: nobody may be waiting
        if self._log is not None:
            self._log.close()

    # -- waiting -------------------------------------------------------------------------

    def _check_following(self) -> None:
        if self._closed:
            raise SessionClosedError(f"the session closed while call {self.id!r} was live")
        if not self._followed and self.direction == "outbound":
            raise HandleStateError(
                f"call {self.id!r} was dialled with correlate=False: its call-state "
                "webhooks go to your own status_url, so the session cannot wait for them"
            )

    async def _wait(self, which: Literal["answered", "ended"], timeout: float | None) -> None:
        self._check_following()
        loop = asyncio.get_running_loop()
        if which == "answered":
            if self._answered is None:
                self._answered = loop.create_future()
            fut = self._answered
        else:
            if self._ended is None:
                self._ended = loop.create_future()
            fut = self._ended
        if timeout is None:
            timeout = self._owner.wait_timeout
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(fut)
        except TimeoutError:
            last = self.last_event
            seen = describe_event(last) if last is not None else "no call-state event yet"
            raise WaitTimeout(
                f"call {self.id!r} was not {which} within {timeout:g} s "
                f"(state {self.state!r}; last event: {seen})",
                awaited=f"call {self.id} {which}",
                timeout=timeout or 0.0,
                last_event=last,
            ) from None

    async def answered(self, timeout: float | None = None) -> None:
        """Wait until the call is answered. ``CallEndedError`` if it ends first;
        ``WaitTimeout`` after ``timeout`` seconds (default: the session's
        ``wait_timeout``, none unless set)."""
        if not self._was_answered and not self.is_ended:
            await self._wait("answered", timeout)
        if not self._was_answered:
            raise CallEndedError(
                f"call {self.id!r} ended without being answered ({self.end_reason})",
                end_reason=self.end_reason,
                call_id=self.id,
                event=self.last_event,
            )

    async def ended(self, timeout: float | None = None) -> str | None:
        """Wait until the call ends; returns the end reason (``hangup``, ``busy``, ...)."""
        if not self.is_ended:
            await self._wait("ended", timeout)
        return self.end_reason

    def events(self) -> AsyncIterator[Event]:
        """Call-state (and refer) events, from the first one seen, until the call ends."""
        log = self._log
        if log is None:
            log = self._log = EventLog()
        return follow(log, self.is_ended)

    # -- sending ------------------------------------------------------------------------

    @overload
    async def send(  # type: ignore[overload-overlap]
        self,
        cmd: _cmd.Play,
        *,
        correlate: Literal[True] = ...,
        request_timeout: TimeoutArg = ...,
    ) -> PlayHandle: ...
    @overload
    async def send(  # type: ignore[overload-overlap]
        self,
        cmd: _cmd.Record,
        *,
        correlate: Literal[True] = ...,
        request_timeout: TimeoutArg = ...,
    ) -> RecordHandle: ...
    @overload
    async def send(  # type: ignore[overload-overlap]
        self,
        cmd: _cmd.Collect,
        *,
        correlate: Literal[True] = ...,
        request_timeout: TimeoutArg = ...,
    ) -> CollectHandle: ...
    @overload
    async def send(  # type: ignore[overload-overlap]
        self,
        cmd: _cmd.Detect,
        *,
        correlate: Literal[True] = ...,
        request_timeout: TimeoutArg = ...,
    ) -> DetectHandle: ...
    @overload
    async def send(  # type: ignore[overload-overlap]
        self,
        cmd: _cmd.Tap,
        *,
        correlate: Literal[True] = ...,
        request_timeout: TimeoutArg = ...,
    ) -> TapHandle: ...
    @overload
    async def send(  # type: ignore[overload-overlap]
        self,
        cmd: _cmd.Stream,
        *,
        correlate: Literal[True] = ...,
        request_timeout: TimeoutArg = ...,
    ) -> StreamHandle: ...
    @overload
    async def send(  # type: ignore[overload-overlap]
        self,
        cmd: _cmd.Transcribe,
        *,
        correlate: Literal[True] = ...,
        request_timeout: TimeoutArg = ...,
    ) -> TranscribeHandle: ...
    @overload
    async def send(
        self,
        cmd: _cmd.Command,
        *,
        correlate: bool = ...,
        request_timeout: TimeoutArg = ...,
    ) -> AnyLeg: ...

    async def send(
        self,
        cmd: _cmd.Command,
        *,
        correlate: bool = True,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> Any:
        """Send any command object to this call.

        Commands that start an operation return its handle; others return the call leg.
        With ``correlate`` (the default) the session fills ``status_url`` and a
        user-given one is refused; ``correlate=False`` sends the command as it is and
        returns the leg (webhooks then go wherever its ``status_url`` says).
        ``request_timeout`` bounds the HTTP request (default: the session's
        ``HTTPSettings.timeout``; ``None``: no limit).
        """
        owner = self._owner
        if not correlate:
            return await owner.send(self, cmd, request_timeout)
        if "status_url" in cmd.__struct_fields__:
            status_url = owner.correlated_status_url(getattr(cmd, "status_url", None))
            cmd = msgspec.structs.replace(cmd, status_url=status_url)
        kind = KIND_BY_START.get(type(cmd))
        if kind is None:
            return await owner.send(self, cmd, request_timeout)
        return await owner.start(self, kind, cmd, request_timeout)

    def _control_id(self, given: str | None) -> str:
        return given or self._owner.new_control_id()

    # -- operations ----------------------------------------------------------------------

    async def play(
        self,
        *media: _cmd.MediaItem,
        volume: float | None = None,
        direction: Literal["listen", "speak", "both"] | None = None,
        loop: int | None = None,
        language: str | None = None,
        voice: str | None = None,
        gender: Literal["male", "female"] | None = None,
        control_id: str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> PlayHandle:
        """Play media items in order (``calling.play``); see ``tts()``, ``audio()``,
        ``silence()``, ``ringtone()``."""
        owner = self._owner
        if (
            volume is None
            and direction is None
            and loop is None
            and language is None
            and voice is None
            and gender is None
        ):  # the usual call: only the media (each _opt() left out is a call saved)
            cmd = _cmd.Play(
                control_id=control_id or owner.new_control_id(),
                play=list(media),
                status_url=owner.status_url,
            )
            return await owner.start(self, PlayHandle.kind, cmd, request_timeout)  # type: ignore[return-value]
        cmd = _cmd.Play(
            control_id=control_id or owner.new_control_id(),
            play=list(media),
            volume=_opt(volume),
            direction=_opt(direction),
            loop=_opt(loop),
            language=_opt(language),
            voice=_opt(voice),
            gender=_opt(gender),
            status_url=owner.status_url,
        )
        return await owner.start(self, PlayHandle.kind, cmd, request_timeout)  # type: ignore[return-value]

    async def play_tts(
        self,
        text: str,
        *,
        volume: float | None = None,
        language: str | None = None,
        voice: str | None = None,
        gender: Literal["male", "female"] | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> PlayHandle:
        """Speak ``text`` (one TTS item)."""
        return await self.play(
            _cmd.tts(text),
            volume=volume,
            language=language,
            voice=voice,
            gender=gender,
            request_timeout=request_timeout,
        )

    async def play_audio(
        self,
        url: str,
        *,
        volume: float | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> PlayHandle:
        """Play an audio file from ``url``."""
        return await self.play(_cmd.audio(url), volume=volume, request_timeout=request_timeout)

    async def play_silence(
        self, duration: float, *, request_timeout: TimeoutArg = DEFAULT
    ) -> PlayHandle:
        """Play ``duration`` seconds of silence."""
        return await self.play(_cmd.silence(duration), request_timeout=request_timeout)

    async def play_ringtone(
        self,
        name: _cmd.RingtoneName,
        duration: float | None = None,
        *,
        volume: float | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> PlayHandle:
        """Play a country's ringtone (``us``, ``uk``, ...), for ``duration`` s or until stopped."""
        return await self.play(
            _cmd.ringtone(name, duration=duration), volume=volume, request_timeout=request_timeout
        )

    async def record(
        self,
        audio: _cmd.RecordAudio | None = None,
        *,
        control_id: str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> RecordHandle:
        """Record the call (``calling.record``); ``audio`` holds the recording options."""
        owner = self._owner
        cmd = _cmd.Record(
            control_id=control_id or owner.new_control_id(),
            record=_cmd.RecordOptions(audio=audio or _cmd.RecordAudio()),
            status_url=owner.status_url,
        )
        return await owner.start(self, RecordHandle.kind, cmd, request_timeout)  # type: ignore[return-value]

    async def collect(
        self,
        *,
        digits: _cmd.Digits | None = None,
        speech: _cmd.Speech | None = None,
        initial_timeout: float | None = None,
        continuous: bool | None = None,
        partial_results: bool | None = None,
        send_start_of_input: bool | None = None,
        start_input_timers: bool = True,
        control_id: str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> CollectHandle:
        """Collect digits and/or speech (``calling.collect``).

        ``start_input_timers`` is sent explicitly (default ``True``: the initial timeout
        starts at once); the platform's documented default when it is left out is
        ``false``, which would leave ``initial_timeout`` unarmed until
        ``handle.start_input_timers()``.
        """
        owner = self._owner
        cmd = _cmd.Collect(
            control_id=control_id or owner.new_control_id(),
            digits=_opt(digits),
            speech=_opt(speech),
            initial_timeout=_opt(initial_timeout),
            continuous=_opt(continuous),
            partial_results=_opt(partial_results),
            send_start_of_input=_opt(send_start_of_input),
            start_input_timers=start_input_timers,
            status_url=owner.status_url,
        )
        return await owner.start(self, CollectHandle.kind, cmd, request_timeout)  # type: ignore[return-value]

    async def prompt(
        self,
        *media: _cmd.MediaItem,
        digits: _cmd.Digits | None = None,
        speech: _cmd.Speech | None = None,
        initial_timeout: float | None = None,
        volume: float | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> CollectHandle:
        """Play a prompt and collect the answer: input during the prompt stops it
        (barge-in) and the input timers start when the prompt ends. Returns the collect;
        ``await (await call.prompt(...)).finished()`` gives the answer."""
        collect = await self.collect(
            digits=digits,
            speech=speech,
            initial_timeout=initial_timeout,
            send_start_of_input=True,
            start_input_timers=False,
            request_timeout=request_timeout,
        )
        try:
            play = await self.play(*media, volume=volume, request_timeout=request_timeout)
        except BaseException:
            await _quietly(collect.stop())
            raise
        _link_prompt(collect, play)
        return collect

    async def detect(
        self,
        detector: _cmd.Detector,
        *,
        timeout: float | None = None,
        control_id: str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> DetectHandle:
        """Run a detector (``calling.detect``): ``machine_detector()``,
        ``fax_detector()``, ``digit_detector()``; ``timeout`` is the detector's maximum
        run time in seconds (the platform's default is 30)."""
        owner = self._owner
        cmd = _cmd.Detect(
            control_id=control_id or owner.new_control_id(),
            detect=detector,
            timeout=_opt(timeout),
            status_url=owner.status_url,
        )
        return await owner.start(self, DetectHandle.kind, cmd, request_timeout)  # type: ignore[return-value]

    async def detect_answering_machine(
        self,
        *,
        timeout: float | None = None,
        initial_timeout: float | None = None,
        end_silence_timeout: float | None = None,
        machine_ready_timeout: float | None = None,
        machine_voice_threshold: float | None = None,
        machine_words_threshold: int | None = None,
        detect_interruptions: bool | None = None,
        detect_message_end: bool | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> DetectHandle:
        """Answering-machine detection; ``await handle.outcome()`` gives human/machine,
        ``await handle.finished()`` the last decision once the detector ends (after the
        beep with ``detect_message_end``)."""
        detector = _cmd.machine_detector(
            initial_timeout=initial_timeout,
            end_silence_timeout=end_silence_timeout,
            machine_ready_timeout=machine_ready_timeout,
            machine_voice_threshold=machine_voice_threshold,
            machine_words_threshold=machine_words_threshold,
            detect_interruptions=detect_interruptions,
            detect_message_end=detect_message_end,
        )
        return await self.detect(detector, timeout=timeout, request_timeout=request_timeout)

    async def tap(
        self,
        device: _cmd.TapDevice,
        *,
        direction: Literal["listen", "speak", "both"] = "both",
        control_id: str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> TapHandle:
        """Tap the call's audio to an RTP or WebSocket device (``calling.tap``)."""
        owner = self._owner
        cmd = _cmd.Tap(
            control_id=control_id or owner.new_control_id(),
            tap=_cmd.tap_audio(direction),
            device=device,
            status_url=owner.status_url,
        )
        return await owner.start(self, TapHandle.kind, cmd, request_timeout)  # type: ignore[return-value]

    async def stream(
        self,
        url: str,
        *,
        name: str | None = None,
        codec: str | None = None,
        track: Literal["inbound_track", "outbound_track", "both_tracks"] | None = None,
        authorization_bearer_token: str | None = None,
        custom_parameters: dict[str, Any] | None = None,
        control_id: str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> StreamHandle:
        """Stream the call's audio to a ``wss://`` endpoint (``calling.stream``)."""
        owner = self._owner
        cmd = _cmd.Stream(
            control_id=control_id or owner.new_control_id(),
            url=url,
            name=_opt(name),
            codec=_opt(codec),
            track=_opt(track),
            authorization_bearer_token=_opt(authorization_bearer_token),
            custom_parameters=_opt(custom_parameters),
            status_url=owner.status_url,
        )
        return await owner.start(self, StreamHandle.kind, cmd, request_timeout)  # type: ignore[return-value]

    async def transcribe(
        self, *, control_id: str | None = None, request_timeout: TimeoutArg = DEFAULT
    ) -> TranscribeHandle:
        """Transcribe the whole call in the background (one per call; a second one gets
        ``ConflictError``). The transcript arrives after ``stop()`` or the call's end."""
        owner = self._owner
        cmd = _cmd.Transcribe(
            control_id=control_id or owner.new_control_id(), status_url=owner.status_url
        )
        return await owner.start(self, TranscribeHandle.kind, cmd, request_timeout)  # type: ignore[return-value]

    # -- call control --------------------------------------------------------------------

    async def end(
        self,
        reason: Literal["hangup", "cancel", "busy", "noAnswer", "decline", "error"] | None = None,
        *,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> AnyLeg | None:
        """Hang up (``calling.end``); ``await call.ended()`` waits for the webhook.

        Returns the call leg, or ``None`` when the call had already ended (nothing is
        sent then, and a 404, meaning the platform already ended it, is not an error).
        """
        return await self._owner.send(self, _cmd.End(reason=_opt(reason)), request_timeout)

    async def update(
        self,
        *,
        url: str | None = None,
        swml: dict[str, Any] | str | None = None,
        status: Literal["canceled", "completed"] | None = None,
        fallback_url: str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> AnyLeg:
        """``update``: redirect to new SWML (``url``/``swml``) or set ``status``
        (``canceled`` before answer, ``completed`` to end an answered call)."""
        owner = self._owner
        cmd = _cmd.Update(
            id=self.id,
            url=_opt(url),
            swml=_opt(swml),
            status=_opt(status),
            fallback_url=_opt(fallback_url),
            status_url=owner.status_url,
        )
        return await owner.send(self, cmd, request_timeout)

    async def redirect(
        self,
        *,
        url: str | None = None,
        swml: dict[str, Any] | str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> AnyLeg:
        """Redirect an answered call to new SWML."""
        return await self.update(url=url, swml=swml, request_timeout=request_timeout)

    async def _plain(self, cmd: _cmd.Command, request_timeout: TimeoutArg) -> AnyLeg:
        return await self._owner.send(self, cmd, request_timeout)

    async def transfer(
        self, dest: str | dict[str, Any], *, request_timeout: TimeoutArg = DEFAULT
    ) -> AnyLeg:
        """Transfer the call (``calling.transfer``) to a number, SIP URI, SWML URL or SWML."""
        return await self._plain(_cmd.Transfer(dest=dest), request_timeout)

    async def disconnect(self, *, request_timeout: TimeoutArg = DEFAULT) -> AnyLeg:
        """Unbridge connected legs without hanging up (``calling.disconnect``)."""
        return await self._plain(_cmd.Disconnect(), request_timeout)

    async def denoise(self, *, request_timeout: TimeoutArg = DEFAULT) -> AnyLeg:
        """Start noise reduction (``calling.denoise``)."""
        return await self._plain(_cmd.Denoise(), request_timeout)

    async def denoise_stop(self, *, request_timeout: TimeoutArg = DEFAULT) -> AnyLeg:
        """Stop noise reduction (``calling.denoise.stop``)."""
        return await self._plain(_cmd.DenoiseStop(), request_timeout)

    async def ai_hold(
        self,
        *,
        timeout: str | None = None,
        prompt: str | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> AnyLeg:
        """Put the call's AI agent on hold (``calling.ai_hold``); ``timeout`` is a string
        of seconds, as the current spec requires."""
        return await self._plain(
            _cmd.AIHold(timeout=_opt(timeout), prompt=_opt(prompt)), request_timeout
        )

    async def ai_unhold(self, *, request_timeout: TimeoutArg = DEFAULT) -> AnyLeg:
        """Take the AI agent off hold (``calling.ai_unhold``)."""
        return await self._plain(_cmd.AIUnhold(), request_timeout)

    async def ai_message(
        self,
        message_text: str | None = None,
        *,
        role: Literal["system", "user", "assistant"] | None = None,
        reset: _cmd.AIReset | None = None,
        global_data: dict[str, Any] | None = None,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> AnyLeg:
        """Send a message to the call's AI agent (``calling.ai_message``)."""
        cmd = _cmd.AIMessage(
            message_text=_opt(message_text),
            role=_opt(role),
            reset=_opt(reset),
            global_data=_opt(global_data),
        )
        return await self._plain(cmd, request_timeout)

    async def ai_stop(self, *, request_timeout: TimeoutArg = DEFAULT) -> AnyLeg:
        """Stop the call's AI session (``calling.ai.stop``)."""
        return await self._plain(_cmd.AIStop(), request_timeout)

    async def live_transcribe(
        self,
        action: _cmd.LiveTranscribeAction | Literal["stop"],
        *,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> AnyLeg:
        """Start, summarize or stop live transcription (``calling.live_transcribe``)."""
        return await self._plain(_cmd.LiveTranscribe(action=action), request_timeout)

    async def live_translate(
        self,
        action: _cmd.LiveTranslateAction | Literal["stop"],
        *,
        request_timeout: TimeoutArg = DEFAULT,
    ) -> AnyLeg:
        """Start, summarize, inject or stop live translation (``calling.live_translate``)."""
        cmd = _cmd.LiveTranslate(action=action, status_url=self._owner.status_url)
        return await self._plain(cmd, request_timeout)

    async def refer(
        self, device: _cmd.SIPDevice, *, request_timeout: TimeoutArg = DEFAULT
    ) -> AnyLeg:
        """SIP REFER the call (``calling.refer``); ``calling.call.refer`` events arrive
        in ``call.events()``."""
        cmd = _cmd.Refer(device=device, status_url=self._owner.status_url)
        return await self._plain(cmd, request_timeout)

    async def user_event(
        self, event: dict[str, Any], *, request_timeout: TimeoutArg = DEFAULT
    ) -> AnyLeg:
        """Send a user event to the client connected to the call (``calling.user_event``)."""
        return await self._plain(_cmd.UserEvent(event=event), request_timeout)

    async def send_fax_stop(
        self, control_id: str, *, request_timeout: TimeoutArg = DEFAULT
    ) -> AnyLeg:
        """Stop a fax send started by SWML or RELAY (``calling.send_fax.stop``)."""
        return await self._plain(_cmd.SendFaxStop(control_id=control_id), request_timeout)

    async def receive_fax_stop(
        self, control_id: str, *, request_timeout: TimeoutArg = DEFAULT
    ) -> AnyLeg:
        """Stop a fax reception started by SWML or RELAY (``calling.receive_fax.stop``)."""
        return await self._plain(_cmd.ReceiveFaxStop(control_id=control_id), request_timeout)


def _resolve(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


async def _quietly(coro: Awaitable[Any]) -> None:
    try:
        await coro
    except Exception:
        pass


def _link_prompt(collect: CollectHandle, play: PlayHandle) -> None:
    """Ties a prompt's play to its collect with callbacks (no waiting Task): the first
    input stops the play (barge-in); the play's end starts the collect's input timers."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Awaitable[Any]) -> None:
        task = loop.create_task(_quietly(coro))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_play_done(_: OperationHandle[Any]) -> None:
        if not collect.done:
            spawn(collect.start_input_timers())

    def on_input(_: OperationHandle[Any]) -> None:
        if not play.done:
            spawn(play.stop())

    play.add_done_callback(on_play_done)
    collect.add_first_event_callback(on_input)
