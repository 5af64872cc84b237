"""Every exception ``signalwire_calls`` raises.

The tree::

    SignalWireError
     ├── RequestError                    a command could not be carried out over HTTP
     │    ├── TransportError             nothing usable came back; ``request_sent`` says
     │    │    │                         whether the request may have reached the server
     │    │    ├── ConnectError          refused / reset / DNS / TLS / proxy failure
     │    │    └── RequestTimeout        also a built-in ``TimeoutError``
     │    │         ├── PoolTimeout      waited for a connection slot; never sent
     │    │         ├── ConnectTimeout   could not connect in time; never sent
     │    │         └── ReadTimeout      no full answer in time; may have been sent
     │    ├── ResponseValidationError    a 2xx answer whose body is not a call leg
     │    └── APIStatusError             the server answered non-2xx (status, body, request_id)
     │         ├── BadRequestError             400
     │         ├── AuthenticationError         401
     │         ├── PermissionDeniedError       403
     │         ├── NotFoundError               404 (unknown or ended call)
     │         │    └── CallNotFoundError      404 on a command to a call: it has ended;
     │         │                               also a ``CallEndedError``
     │         ├── ConflictError               409 (e.g. a second transcribe)
     │         ├── UnprocessableEntityError    422, ``.errors`` holds ``APIErrorItem``s
     │         ├── RateLimitError              429
     │         └── ServerError                 5xx
     ├── ValidationError                 a command was refused before it was sent;
     │                                   also a ``ValueError``; ``.field`` names the field
     ├── ConfigurationError              missing credentials or bad settings; also ``ValueError``
     ├── SessionStateError               misuse: a session opened twice, used before it was
     │                                   opened or after it was closed; also ``RuntimeError``
     ├── OutcomeError                    an operation ended without a usable result
     │    ├── OperationFailed            the platform reported ``state=error``
     │    ├── CallEndedError             the call ended before the operation finished
     │    └── SessionClosedError         the session was closed while it was pending
     ├── WaitTimeout                     a wait (``finished()``, ``answered()``, ...) ran out
     │                                   of time; also a ``TimeoutError``
     ├── HandleStateError                a sub-command was used in a state that forbids it
     └── WebhookError                    an incoming webhook was refused
          ├── InvalidSignatureError      also a ``ValueError``
          └── MalformedWebhookError      also a ``ValueError``

Request-time errors carry ``command`` (the command name) so a log line says what failed.
No error, nor anything chained to it, carries the API token: transport failures are
summarised in the message instead of chaining the HTTP client's exception (which holds
the request's headers).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "APIErrorItem",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "CallEndedError",
    "CallNotFoundError",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "ConnectTimeout",
    "HandleStateError",
    "InvalidSignatureError",
    "MalformedWebhookError",
    "NotFoundError",
    "OperationFailed",
    "OutcomeError",
    "PermissionDeniedError",
    "PoolTimeout",
    "RateLimitError",
    "ReadTimeout",
    "RequestError",
    "RequestTimeout",
    "ResponseValidationError",
    "ServerError",
    "SessionClosedError",
    "SessionStateError",
    "SignalWireError",
    "TransportError",
    "UnprocessableEntityError",
    "ValidationError",
    "WaitTimeout",
    "WebhookError",
    "status_error_class",
]


class SignalWireError(Exception):
    """Base class of every exception raised by ``signalwire_calls``."""


# --------------------------------------------------------------------------- request time


class RequestError(SignalWireError):
    """A command could not be carried out over HTTP."""

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command


class TransportError(RequestError):
    """No usable HTTP response came back (connection failure or timeout).

    ``request_sent`` tells whether the request may have reached the server: when it is
    ``False`` the command was certainly not carried out (safe to send again); when it is
    ``True`` it may have been (a ``dial`` may have placed a call).
    """

    def __init__(
        self, message: str, *, command: str | None = None, request_sent: bool = True
    ) -> None:
        super().__init__(message, command=command)
        self.request_sent = request_sent


class ConnectError(TransportError):
    """The connection failed: refused, reset, DNS, TLS or proxy failure.

    Failing to connect leaves ``request_sent`` ``False``; a connection lost after the
    request was written leaves it ``True``.
    """


class RequestTimeout(TransportError, TimeoutError):
    """The request did not complete within its timeout. Also a ``TimeoutError``."""


class PoolTimeout(RequestTimeout):
    """The command waited for a connection slot (``HTTPSettings.limit``) until its time
    budget ran out; it was never sent (``request_sent`` is ``False``)."""

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message, command=command, request_sent=False)


class ConnectTimeout(RequestTimeout):
    """Opening a connection took longer than ``HTTPSettings.connect_timeout`` (or the time
    left); the request was never sent (``request_sent`` is ``False``)."""

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message, command=command, request_sent=False)


class ReadTimeout(RequestTimeout):
    """Connected, but the full answer did not arrive in time; the request may have been
    carried out (``request_sent`` is ``True``)."""

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message, command=command, request_sent=True)


class ResponseValidationError(RequestError):
    """The server answered 2xx, but the body is not a JSON call leg. The command was
    carried out; only its answer is unreadable. ``status`` and ``body`` (parsed JSON or
    raw text) are kept for inspection."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        request_id: str | None = None,
        command: str | None = None,
    ) -> None:
        super().__init__(message, command=command)
        self.status = status
        self.body = body
        self.request_id = request_id


class APIErrorItem(msgspec.Struct, frozen=True, kw_only=True):
    """One item of a 422 body's ``errors`` list."""

    code: str | None = None
    message: str | None = None
    attribute: str | None = None
    type: str | None = None
    url: str | None = None


class APIStatusError(RequestError):
    """The server answered with a non-2xx status.

    ``status`` is the HTTP status, ``body`` the parsed JSON body (or the raw text when it
    was not JSON), ``request_id`` the server's request id header when one was sent,
    ``retry_after`` the server's ``Retry-After`` in seconds when it sent one (429, 503).
    """

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        request_id: str | None = None,
        command: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, command=command)
        self.status = status
        self.body = body
        self.request_id = request_id
        self.headers = headers or {}
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the body was malformed or a required field was missing."""


class AuthenticationError(APIStatusError):
    """401: the project id or API token is wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the token lacks the Voice scope."""


class NotFoundError(APIStatusError):
    """404: the call is unknown, not in this project, or already ended."""


class ConflictError(APIStatusError):
    """409: the operation conflicts with one already active (e.g. a second transcribe)."""


class UnprocessableEntityError(APIStatusError):
    """422: validation failed on the server; ``errors`` lists each problem."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        request_id: str | None = None,
        command: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            body=body,
            request_id=request_id,
            command=command,
            headers=headers,
            retry_after=retry_after,
        )
        self.errors: list[APIErrorItem] = _parse_error_items(body)


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds, if any."""


class ServerError(APIStatusError):
    """5xx: the server failed."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The exception class for an HTTP status (5xx -> ``ServerError``)."""
    cls = _STATUS_CLASSES.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return ServerError
    return APIStatusError


def _parse_error_items(body: Any) -> list[APIErrorItem]:
    if not isinstance(body, dict):
        return []
    raw = body.get("errors")
    if not isinstance(raw, list):
        return []
    items: list[APIErrorItem] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        items.append(
            APIErrorItem(
                code=_str_or_none(entry.get("code")),
                message=_str_or_none(entry.get("message")),
                attribute=_str_or_none(entry.get("attribute")),
                type=_str_or_none(entry.get("type")),
                url=_str_or_none(entry.get("url")),
            )
        )
    return items


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --------------------------------------------------------------------------- validation


class ValidationError(SignalWireError, ValueError):
    """A command was refused before anything was sent. ``field`` names the bad field
    as a dotted path into the command's params (e.g. ``"play[0].params.text"``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class ConfigurationError(SignalWireError, ValueError):
    """Missing credentials or an invalid setting; the message says how to fix it."""


# --------------------------------------------------------------------------- outcomes


class SessionStateError(SignalWireError, RuntimeError):
    """The session was used in a state that does not allow it: opened twice, used before
    ``open()`` (or ``async with``), or after ``aclose()``. A programming error, apart
    from the outcome errors; also a ``RuntimeError``."""


class OutcomeError(SignalWireError):
    """An operation ended without a usable result."""

    def __init__(self, message: str, *, control_id: str | None = None) -> None:
        super().__init__(message)
        self.control_id = control_id


class OperationFailed(OutcomeError):
    """The platform reported ``state=error`` (or an error result) for the operation.
    ``event`` is the event that reported it."""

    def __init__(self, message: str, *, control_id: str | None = None, event: Any = None) -> None:
        super().__init__(message, control_id=control_id)
        self.event = event


class CallEndedError(OutcomeError):
    """The call ended, so the operation (or the wait) cannot give its result.

    ``end_reason`` is the call's end reason when known (``hangup``, ``busy``, ...,
    ``not_found`` after a 404, ``end_webhook_lost`` when the library ended the call
    itself because its ``ended`` webhook never came); ``call_id`` the call;
    ``event`` the last event seen for the operation (e.g. a play's ``finished`` that
    arrived with the hang-up), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        control_id: str | None = None,
        end_reason: str | None = None,
        call_id: str | None = None,
        event: Any = None,
    ) -> None:
        super().__init__(message, control_id=control_id)
        self.end_reason = end_reason
        self.call_id = call_id
        self.event = event


class CallNotFoundError(NotFoundError, CallEndedError):
    """404 on a command to a call: the platform no longer knows the call, so it has
    ended (``end_reason`` ``"not_found"``; the session marks the call ended). Both a
    ``NotFoundError`` (status, body, request id) and a ``CallEndedError``, so a flow's
    ``except CallEndedError`` covers a hang-up it learns of this way too."""

    def __init__(self, cause: NotFoundError, *, call_id: str) -> None:
        super().__init__(
            str(cause),
            status=cause.status,
            body=cause.body,
            request_id=cause.request_id,
            command=cause.command,
            headers=cause.headers,
        )
        self.control_id = None
        self.end_reason = "not_found"
        self.call_id = call_id
        self.event = None


class SessionClosedError(OutcomeError):
    """The session was closed while this was pending (a handle, a call's wait, a command
    queued for a connection)."""


class WaitTimeout(SignalWireError, TimeoutError):
    """A wait ran out of time; what was awaited is intact and can be awaited again.

    ``awaited`` names it, ``timeout`` is the time given in seconds, ``last_event`` the
    last event seen for it (``None`` when none arrived: check the receiver's
    ``rejected_signature`` counter and the session's WARNING log). Also a
    ``TimeoutError``.
    """

    def __init__(
        self, message: str, *, awaited: str, timeout: float, last_event: Any = None
    ) -> None:
        super().__init__(message)
        self.awaited = awaited
        self.timeout = timeout
        self.last_event = last_event


class HandleStateError(SignalWireError):
    """A handle method was called in a state that does not allow it
    (e.g. ``pause()`` on a finished play)."""


# --------------------------------------------------------------------------- webhooks


class WebhookError(SignalWireError):
    """An incoming webhook was refused."""


class InvalidSignatureError(WebhookError, ValueError):
    """The webhook signature is missing or does not match."""


class MalformedWebhookError(WebhookError, ValueError):
    """The webhook body is not a JSON object the receiver can read."""
