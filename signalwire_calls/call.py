"""``Call``: one call leg, a method per command, and its call state from webhooks.

call = await session.dial(to="+15551230001", from_="+15559870000", url=SWML_URL)
await call.answered()
play = await call.play(tts("Hello"))
await play.finished()
await call.end()
reason = await call.ended()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec

from . import commands as _cmd
from .commands import _opt  # None means "leave it out", as in the factories
from .errors import (
    CallEndedError,
    HandleStateError,
    NotFoundError,
    SessionClosedError,
    ValidationError,
)
from .events import CallStateEvent, Event
from .handles import (
    HISTORY_LIMIT,
    CollectHandle,
    DetectHandle,
    OperationHandle,
    PlayHandle,
    RecordHandle,
    StreamHandle,
    TapHandle,
    TranscribeHandle,
    _EventStream,
    _follow,
)

if TYPE_CHECKING:
    from .legs import AnyLeg
    from .session import CallSession

__all__ = ["Call"]

H = TypeVar("H", bound=OperationHandle[Any])


# Command classes that start an operation, and the handle each one gets.
_HANDLE_FOR: dict[type[_cmd.Command], type[OperationHandle[Any]]] = {
    _cmd.Play: PlayHandle,
    _cmd.Record: RecordHandle,
    _cmd.Collect: CollectHandle,
    _cmd.Detect: DetectHandle,
    _cmd.Tap: TapHandle,
    _cmd.Stream: StreamHandle,
    _cmd.Transcribe: TranscribeHandle,
}


class Call:
    """One call leg. Created by ``CallSession.dial`` or ``CallSession.call(call_id)``.

    ``state`` follows the call-state webhooks (``created``, ``ringing``, ``answered``,
    ``ending``, ``ended``); ``answered()`` and ``ended()`` wait for them. Every command
    method fills in ``control_id`` and ``status_url`` itself and, for long-running
    operations, returns a handle that is registered before the command is sent.
    """

    __slots__ = (
        "_answered",
        "_closed",
        "_end_timer",
        "_ended",
        "_followed",
        "_history",
        "_ops",
        "_session",
        "_streams",
        "_was_answered",
        "end_reason",
        "id",
        "leg",
        "state",
    )

    def __init__(self, session: CallSession, call_id: str, leg: AnyLeg | None = None) -> None:
        self._session = session
        self.id = call_id
        self.leg = leg
        self.state: str = "queued" if leg is None else (getattr(leg, "status", None) or "queued")
        self.end_reason: str | None = None
        self._answered: asyncio.Future[None] | None = None
        self._was_answered = self.state == "answered"
        self._ended: asyncio.Future[None] | None = None
        self._ops: dict[str, OperationHandle[Any]] = {}
        self._history: list[Event] = []
        self._streams: list[_EventStream] | None = None
        self._end_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._followed = True  # False for dial(correlate=False): no call-state webhooks

    def __repr__(self) -> str:
        return f"<Call id={self.id!r} state={self.state!r} pending_operations={len(self._ops)}>"

    # -- state ------------------------------------------------------------------------

    @property
    def is_ended(self) -> bool:
        """True once the call ended (an ``ended`` webhook, a 404, or the session closed)."""
        return self.state == "ended"

    @property
    def pending(self) -> list[OperationHandle[Any]]:
        """The operations still pending on this call."""
        return list(self._ops.values())

    def _feed(self, event: Event) -> bool:
        history = self._history
        if event in history:
            return False
        history.append(event)
        if len(history) > HISTORY_LIMIT:
            del history[0]
        streams = self._streams
        if streams is not None:
            for s in streams:
                s.push(event)
        if isinstance(event, CallStateEvent):
            state = event.params.call_state
            if state == "ended":
                self._mark_ended(event.params.end_reason)
            elif state is not None and not self.is_ended:
                # a late "ringing" after "answered" does not move the state back
                if _ORDER.get(state, 0) >= _ORDER.get(self.state, 0):
                    self.state = state
                if state == "answered":
                    self._was_answered = True
                    self._resolve(self._answered)
        return True

    @staticmethod
    def _resolve(fut: asyncio.Future[None] | None) -> None:
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _mark_ended(self, reason: str | None) -> None:
        if self.is_ended:
            return
        self.state = "ended"
        self.end_reason = reason
        self._resolve(self._answered)
        self._resolve(self._ended)
        streams = self._streams
        if streams is not None:
            for s in streams:
                s.close()
        session = self._session
        if self._ops:
            # handles get a grace period for their own terminal event (protocol 6)
            loop = asyncio.get_running_loop()
            grace = session._call_end_grace
            self._end_timer = loop.call_later(grace, self._settle_after_end, grace, False)
        else:
            session._registry.remove_call(self)

    def _settle_after_end(self, grace: float, final: bool) -> None:
        """Settle what is still pending after the grace period. Handles that expect
        their result only after the call ends (transcribe) get a longer one."""
        self._end_timer = None
        extended = 0.0
        for op in list(self._ops.values()):
            if not final and op._grace_factor > 1.0:
                extended = max(extended, op._grace_factor)
            else:
                op._settle_call_ended(self.end_reason)
        if self._ops and extended:
            loop = asyncio.get_running_loop()
            self._end_timer = loop.call_later(
                grace * (extended - 1.0), self._settle_after_end, grace, True
            )
            return
        self._session._registry.remove_call(self)

    def _settle_closed(self) -> None:
        """The session closed: settle every pending operation and the call's waiters."""
        self._closed = True
        if self._end_timer is not None:
            self._end_timer.cancel()
            self._end_timer = None
        for op in list(self._ops.values()):
            op._settle_session_closed()
        err = SessionClosedError(f"the session closed while call {self.id!r} was live")
        for fut in (self._answered, self._ended):
            if fut is not None and not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved: nobody may be waiting
        streams = self._streams
        if streams is not None:
            for s in streams:
                s.close()

    def _operation_settled(self, op: OperationHandle[Any]) -> None:
        if self._ops.pop(op.control_id, None) is not None:
            self._session._registry.remove_operation(op)
        if self._end_timer is not None and self.is_ended and not self._ops:
            self._end_timer.cancel()
            self._end_timer = None
            self._session._registry.remove_call(self)

    def _check_following(self) -> None:
        if self._closed:
            raise SessionClosedError(f"the session closed while call {self.id!r} was live")
        if not self._followed:
            raise HandleStateError(
                f"call {self.id!r} was dialled with correlate=False: its call-state "
                "webhooks go to your own status_url, so the session cannot wait for them"
            )

    async def answered(self, timeout: float | None = None) -> None:
        """Wait until the call is answered. ``CallEndedError`` if it ends first."""
        if not self._was_answered and not self.is_ended:
            self._check_following()
            if self._answered is None:
                self._answered = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._answered)
        if not self._was_answered:
            raise CallEndedError(
                f"call {self.id!r} ended without being answered ({self.end_reason})",
                end_reason=self.end_reason,
            )

    async def ended(self, timeout: float | None = None) -> str | None:
        """Wait until the call ends; returns the end reason (``hangup``, ``busy``, ...)."""
        if not self.is_ended:
            self._check_following()
            if self._ended is None:
                self._ended = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._ended)
        return self.end_reason

    def events(self) -> AsyncIterator[Event]:
        """Call-state (and refer) events, from the first one seen, until the call ends."""
        return _follow(self, self._history, self.is_ended)

    # -- sending ------------------------------------------------------------------------

    async def _send_command(self, cmd: _cmd.Command) -> AnyLeg:
        try:
            leg = await self._session._send(cmd, self.id)
        except NotFoundError:
            self._not_found()
            raise
        self.leg = leg
        return leg

    def _not_found(self) -> None:
        # the platform no longer knows the call: it ended, whatever we heard
        if not self.is_ended:
            self._mark_ended("not_found")

    async def send(self, cmd: _cmd.Command, *, correlate: bool = True) -> Any:
        """Send any command object to this call.

        Commands that start an operation return its handle; others return the call leg.
        With ``correlate`` (the default) the session fills ``status_url`` and a
        user-given one is refused; ``correlate=False`` sends the command as it is and
        returns the leg (webhooks then go wherever its ``status_url`` says).
        """
        handle_cls = _HANDLE_FOR.get(type(cmd))
        if not correlate:
            return await self._send_command(cmd)
        if "status_url" in cmd.__struct_fields__:
            status_url = self._session._correlated_status_url(getattr(cmd, "status_url", None))
            cmd = msgspec.structs.replace(cmd, status_url=status_url)
        if handle_cls is None:
            return await self._send_command(cmd)
        control_id: str = cmd.control_id  # type: ignore[attr-defined]
        return await self._start(handle_cls, cmd, control_id)

    async def _start(
        self, handle_cls: type[H], cmd: _cmd.Command, control_id: str, **handle_kw: Any
    ) -> H:
        # Awaits the transport directly (no frame in between): a coroutine frame is
        # paid again on every resumption of the request.
        session = self._session
        body = session._encode(cmd, self.id)
        if control_id in self._ops:
            raise ValidationError("control_id", f"{control_id!r} is already active on this call")
        handle = handle_cls(control_id, self, **handle_kw)
        registry = session._registry
        self._ops[control_id] = handle
        if handle_cls is TranscribeHandle:
            registry.add_transcribe(self.id, handle)  # type: ignore[arg-type]
        else:
            registry.add_operation(handle)
        try:
            self.leg = await session._transport.post(body, cmd.command, has_control_id=True)
        except BaseException as exc:
            if isinstance(exc, NotFoundError):
                self._not_found()
            # never sent (or refused): forget the handle without remembering its key
            self._ops.pop(control_id, None)
            registry.remove_operation(handle, settled=False)
            raise
        return handle

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
    ) -> PlayHandle:
        """Play media items in order (``calling.play``); see ``tts()``, ``audio()``,
        ``silence()``, ``ringtone()``."""
        cid = control_id or self._session._new_control_id()
        cmd = _cmd.Play(
            control_id=cid,
            play=list(media),
            volume=_opt(volume),
            direction=_opt(direction),
            loop=_opt(loop),
            language=_opt(language),
            voice=_opt(voice),
            gender=_opt(gender),
            status_url=self._session.status_url,
        )
        return await self._start(PlayHandle, cmd, cid)

    async def play_tts(self, text: str, **options: Any) -> PlayHandle:
        """Speak ``text`` (one TTS item). Options as for ``play``."""
        return await self.play(_cmd.tts(text), **options)

    async def play_audio(self, url: str, **options: Any) -> PlayHandle:
        """Play an audio file from ``url``."""
        return await self.play(_cmd.audio(url), **options)

    async def play_silence(self, duration: float, **options: Any) -> PlayHandle:
        """Play ``duration`` seconds of silence."""
        return await self.play(_cmd.silence(duration), **options)

    async def play_ringtone(
        self, name: str, duration: float | None = None, **options: Any
    ) -> PlayHandle:
        """Play a country's ringtone (``us``, ``uk``, ...), for ``duration`` s or until stopped."""
        return await self.play(_cmd.ringtone(name, duration=duration), **options)  # type: ignore[arg-type]

    async def record(
        self,
        audio: _cmd.RecordAudio | None = None,
        *,
        control_id: str | None = None,
    ) -> RecordHandle:
        """Record the call (``calling.record``); ``audio`` holds the recording options."""
        cid = control_id or self._session._new_control_id()
        cmd = _cmd.Record(
            control_id=cid,
            record=_cmd.RecordOptions(audio=audio or _cmd.RecordAudio()),
            status_url=self._session.status_url,
        )
        return await self._start(RecordHandle, cmd, cid)

    async def collect(
        self,
        *,
        digits: _cmd.Digits | None = None,
        speech: _cmd.Speech | None = None,
        initial_timeout: float | None = None,
        continuous: bool | None = None,
        partial_results: bool | None = None,
        send_start_of_input: bool | None = None,
        start_input_timers: bool | None = None,
        control_id: str | None = None,
    ) -> CollectHandle:
        """Collect digits and/or speech (``calling.collect``)."""
        cid = control_id or self._session._new_control_id()
        cmd = _cmd.Collect(
            control_id=cid,
            digits=_opt(digits),
            speech=_opt(speech),
            initial_timeout=_opt(initial_timeout),
            continuous=_opt(continuous),
            partial_results=_opt(partial_results),
            send_start_of_input=_opt(send_start_of_input),
            start_input_timers=_opt(start_input_timers),
            status_url=self._session.status_url,
        )
        return await self._start(CollectHandle, cmd, cid, continuous=bool(continuous))

    async def prompt(
        self,
        *media: _cmd.MediaItem,
        digits: _cmd.Digits | None = None,
        speech: _cmd.Speech | None = None,
        initial_timeout: float | None = None,
        volume: float | None = None,
    ) -> CollectHandle:
        """Play a prompt and collect the answer: input during the prompt stops it
        (barge-in) and the input timers start when the prompt ends."""
        collect = await self.collect(
            digits=digits,
            speech=speech,
            initial_timeout=initial_timeout,
            send_start_of_input=True,
            start_input_timers=False,
        )
        try:
            play = await self.play(*media, volume=volume)
        except BaseException:
            await _quietly(collect.stop())
            raise
        _PromptLink(collect, play).install()
        return collect

    async def detect(
        self,
        detector: _cmd.Detector,
        *,
        timeout: float | None = None,
        control_id: str | None = None,
    ) -> DetectHandle:
        """Run a detector (``calling.detect``): ``machine_detector()``,
        ``fax_detector()``, ``digit_detector()``."""
        cid = control_id or self._session._new_control_id()
        cmd = _cmd.Detect(
            control_id=cid,
            detect=detector,
            timeout=_opt(timeout),
            status_url=self._session.status_url,
        )
        return await self._start(DetectHandle, cmd, cid)

    async def detect_answering_machine(
        self, *, timeout: float | None = None, **machine_options: Any
    ) -> DetectHandle:
        """Answering-machine detection; ``await handle.outcome()`` gives human/machine."""
        return await self.detect(_cmd.machine_detector(**machine_options), timeout=timeout)

    async def tap(
        self,
        device: _cmd.TapDevice,
        *,
        direction: Literal["listen", "speak", "both"] = "both",
        control_id: str | None = None,
    ) -> TapHandle:
        """Tap the call's audio to an RTP or WebSocket device (``calling.tap``)."""
        cid = control_id or self._session._new_control_id()
        cmd = _cmd.Tap(
            control_id=cid,
            tap=_cmd.tap_audio(direction),
            device=device,
            status_url=self._session.status_url,
        )
        return await self._start(TapHandle, cmd, cid)

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
    ) -> StreamHandle:
        """Stream the call's audio to a ``wss://`` endpoint (``calling.stream``)."""
        cid = control_id or self._session._new_control_id()
        cmd = _cmd.Stream(
            control_id=cid,
            url=url,
            name=_opt(name),
            codec=_opt(codec),
            track=_opt(track),
            authorization_bearer_token=_opt(authorization_bearer_token),
            custom_parameters=_opt(custom_parameters),
            status_url=self._session.status_url,
        )
        return await self._start(StreamHandle, cmd, cid)

    async def transcribe(self, *, control_id: str | None = None) -> TranscribeHandle:
        """Transcribe the whole call in the background (one per call; a second one gets
        ``ConflictError``). The transcript arrives after ``stop()`` or the call's end."""
        cid = control_id or self._session._new_control_id()
        cmd = _cmd.Transcribe(control_id=cid, status_url=self._session.status_url)
        return await self._start(TranscribeHandle, cmd, cid)

    # -- call control --------------------------------------------------------------------

    async def end(
        self,
        reason: Literal["hangup", "cancel", "busy", "noAnswer", "decline", "error"] | None = None,
    ) -> AnyLeg:
        """Hang up (``calling.end``). ``await call.ended()`` waits for the webhook."""
        return await self._send_command(_cmd.End(reason=_opt(reason)))

    async def update(
        self,
        *,
        url: str | None = None,
        swml: dict[str, Any] | str | None = None,
        status: Literal["canceled", "completed"] | None = None,
        fallback_url: str | None = None,
    ) -> AnyLeg:
        """``update``: redirect to new SWML (``url``/``swml``) or set ``status``
        (``canceled`` before answer, ``completed`` to end an answered call)."""
        cmd = _cmd.Update(
            id=self.id,
            url=_opt(url),
            swml=_opt(swml),
            status=_opt(status),
            fallback_url=_opt(fallback_url),
            status_url=self._session.status_url,
        )
        return await self._send_command(cmd)

    async def redirect(
        self, *, url: str | None = None, swml: dict[str, Any] | str | None = None
    ) -> AnyLeg:
        """Redirect an answered call to new SWML."""
        return await self.update(url=url, swml=swml)

    async def transfer(self, dest: str | dict[str, Any]) -> AnyLeg:
        """Transfer the call (``calling.transfer``) to a number, SIP URI, SWML URL or SWML."""
        return await self._send_command(_cmd.Transfer(dest=dest))

    async def disconnect(self) -> AnyLeg:
        """Unbridge connected legs without hanging up (``calling.disconnect``)."""
        return await self._send_command(_cmd.Disconnect())

    async def denoise(self) -> AnyLeg:
        """Start noise reduction (``calling.denoise``)."""
        return await self._send_command(_cmd.Denoise())

    async def denoise_stop(self) -> AnyLeg:
        """Stop noise reduction (``calling.denoise.stop``)."""
        return await self._send_command(_cmd.DenoiseStop())

    async def ai_hold(self, *, timeout: str | None = None, prompt: str | None = None) -> AnyLeg:
        """Put the call's AI agent on hold (``calling.ai_hold``); ``timeout`` is a string
        of seconds, as the current spec requires."""
        return await self._send_command(_cmd.AIHold(timeout=_opt(timeout), prompt=_opt(prompt)))

    async def ai_unhold(self) -> AnyLeg:
        """Take the AI agent off hold (``calling.ai_unhold``)."""
        return await self._send_command(_cmd.AIUnhold())

    async def ai_message(
        self,
        message_text: str | None = None,
        *,
        role: Literal["system", "user", "assistant"] | None = None,
        reset: _cmd.AIReset | None = None,
        global_data: dict[str, Any] | None = None,
    ) -> AnyLeg:
        """Send a message to the call's AI agent (``calling.ai_message``)."""
        return await self._send_command(
            _cmd.AIMessage(
                message_text=_opt(message_text),
                role=_opt(role),
                reset=_opt(reset),
                global_data=_opt(global_data),
            )
        )

    async def ai_stop(self) -> AnyLeg:
        """Stop the call's AI session (``calling.ai.stop``)."""
        return await self._send_command(_cmd.AIStop())

    async def live_transcribe(self, action: _cmd.LiveTranscribeAction | Literal["stop"]) -> AnyLeg:
        """Start, summarize or stop live transcription (``calling.live_transcribe``)."""
        return await self._send_command(_cmd.LiveTranscribe(action=action))

    async def live_translate(self, action: _cmd.LiveTranslateAction | Literal["stop"]) -> AnyLeg:
        """Start, summarize, inject or stop live translation (``calling.live_translate``)."""
        return await self._send_command(
            _cmd.LiveTranslate(action=action, status_url=self._session.status_url)
        )

    async def refer(self, device: _cmd.SIPDevice) -> AnyLeg:
        """SIP REFER the call (``calling.refer``); ``calling.call.refer`` events arrive
        in ``call.events()``."""
        return await self._send_command(
            _cmd.Refer(device=device, status_url=self._session.status_url)
        )

    async def user_event(self, event: dict[str, Any]) -> AnyLeg:
        """Send a user event to the client connected to the call (``calling.user_event``)."""
        return await self._send_command(_cmd.UserEvent(event=event))

    async def send_fax_stop(self, control_id: str) -> AnyLeg:
        """Stop a fax send started by SWML or RELAY (``calling.send_fax.stop``)."""
        return await self._send_command(_cmd.SendFaxStop(control_id=control_id))

    async def receive_fax_stop(self, control_id: str) -> AnyLeg:
        """Stop a fax reception started by SWML or RELAY (``calling.receive_fax.stop``)."""
        return await self._send_command(_cmd.ReceiveFaxStop(control_id=control_id))


_ORDER = {"queued": 0, "created": 1, "ringing": 2, "answered": 3, "ending": 4, "ended": 5}


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except Exception:
        pass


class _PromptLink:
    """Ties a prompt's play to its collect: input stops the play, the play's end starts
    the input timers. Callbacks, not a waiting Task."""

    __slots__ = ("collect", "play")

    def __init__(self, collect: CollectHandle, play: PlayHandle) -> None:
        self.collect = collect
        self.play = play

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        collect, play = self.collect, self.play
        tasks: set[asyncio.Task[None]] = set()

        def spawn(coro: Any) -> None:
            task = loop.create_task(_quietly(coro))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def on_play_done(_: asyncio.Future[None]) -> None:
            if not collect.done:
                spawn(collect.start_input_timers())

        def on_input(_: asyncio.Future[None]) -> None:
            if not play.done:
                spawn(play.stop())

        play_fut: asyncio.Future[None] = loop.create_future()
        play_fut.add_done_callback(on_play_done)
        _watch_done(play, play_fut)
        input_fut: asyncio.Future[None] = loop.create_future()
        input_fut.add_done_callback(on_input)
        _watch_first_event(collect, input_fut)


def _watch_done(handle: OperationHandle[Any], fut: asyncio.Future[None]) -> None:
    if handle.done:
        fut.set_result(None)
        return
    if handle._waiters is None:
        handle._waiters = [fut]
    else:
        handle._waiters.append(fut)


class _FirstEvent(_EventStream):
    """A stand-in consumer of a handle's events that only resolves ``fut`` on the first
    event (or when the handle settles)."""

    __slots__ = ("_fut",)

    def __init__(self, fut: asyncio.Future[None]) -> None:
        super().__init__(None)
        self._fut = fut

    def push(self, item: Any) -> None:
        if not self._fut.done():
            self._fut.set_result(None)

    def close(self) -> None:
        self.push(None)


def _watch_first_event(handle: OperationHandle[Any], fut: asyncio.Future[None]) -> None:
    if handle._history or handle.done:
        fut.set_result(None)
        return
    stream = _FirstEvent(fut)
    if handle._streams is None:
        handle._streams = [stream]
    else:
        handle._streams.append(stream)
