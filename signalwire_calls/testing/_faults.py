"""The fault plan: injected webhook and HTTP misbehaviour, deterministic under a seed.

Rates are shares in 0..1 decided by one seeded random stream per kind of fault, so
the k-th decision of a kind is the same in every run with the same seed. Rules target
the N-th webhook (or command) matching a filter. A plan may be changed during a test.

A plan can also be written as JSON (``FaultPlan.load(path)``, ``FaultPlan.from_dict``,
``signalwire-calls simulator --faults FILE.json``), so a chaos run works across
processes. Every key is optional; durations are simulated seconds::

    {
      "seed": 7,
      "webhook_delay": 0.5, "webhook_jitter": 0.5,
      "drop_rate": 0.05, "duplicate_rate": 0.1, "reorder_rate": 0.1,
      "terminal_first_rate": 0.0,
      "rate_limit_rate": 0.05, "retry_after": 1.0,
      "server_error_rate": 0.01, "server_error_status": 503,
      "reset_rate": 0.0,
      "events_before_response": false,
      "webhook_rules": [
        {"action": "drop", "event_type": "calling.call.play", "state": "finished",
         "control_id": null, "nth": 1, "count": 1},
        {"action": "delay", "delay": 5.0, "event_type": "calling.call.state"}
      ],
      "command_rules": [
        {"action": "status", "status": 429, "command": "dial", "nth": 1, "count": 2,
         "retry_after": 2.0},
        {"action": "reset", "command": "dial", "after_processing": true}
      ]
    }

Webhook rule actions: ``drop``, ``duplicate``, ``delay`` (by ``delay`` seconds),
``reorder``; command rule actions: ``status`` (answer ``status``, with ``Retry-After:
retry_after`` when given) and ``reset`` (close the connection, after carrying the
command out when ``after_processing``).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast

__all__ = ["CommandFault", "CommandRule", "FaultPlan", "WebhookFault", "WebhookRule"]

WebhookAction = Literal["drop", "duplicate", "delay", "reorder"]
CommandAction = Literal["status", "reset"]


@dataclass(slots=True)
class WebhookRule:
    """Apply ``action`` to the ``nth`` .. ``nth+count-1``-th webhooks matching the filter."""

    action: WebhookAction
    event_type: str | None = None
    state: str | None = None
    control_id: str | None = None
    nth: int = 1
    count: int = 1
    delay: float = 0.0
    seen: int = 0

    def matches(self, event_type: str, state: str | None, control_id: str | None) -> bool:
        if self.event_type is not None and self.event_type != event_type:
            return False
        if self.state is not None and self.state != state:
            return False
        return self.control_id is None or self.control_id == control_id


@dataclass(slots=True)
class CommandRule:
    """Answer the ``nth`` .. ``nth+count-1``-th matching commands with a fault."""

    action: CommandAction
    status: int = 500
    command: str | None = None
    nth: int = 1
    count: int = 1
    retry_after: float | None = None
    after_processing: bool = False
    seen: int = 0


@dataclass(slots=True, frozen=True)
class WebhookFault:
    """What to do with one webhook (the result of :meth:`FaultPlan.webhook_fault`)."""

    drop: bool = False
    duplicate: bool = False
    reorder: bool = False
    delay: float = 0.0


@dataclass(slots=True, frozen=True)
class CommandFault:
    """What to do with one command: answer ``status`` or reset the connection."""

    action: CommandAction
    status: int = 500
    retry_after: float | None = None
    after_processing: bool = False


_NO_WEBHOOK_FAULT = WebhookFault()


@dataclass(slots=True)
class FaultPlan:
    """Faults injected by the simulator; all knobs may be changed during a test.

    Webhooks: ``webhook_delay`` (+ up to ``webhook_jitter``) seconds of simulated delay,
    ``drop_rate``, ``duplicate_rate``, ``reorder_rate`` (a webhook swaps places with the
    next one of its operation), ``terminal_first_rate`` (an operation's terminal event
    is sent before its start event). Commands: ``rate_limit_rate`` (429 with
    ``Retry-After: retry_after`` simulated seconds), ``server_error_rate`` (answered
    with ``server_error_status``, 500 or 503), ``reset_rate`` (connection closed with
    no response, before the command is carried out). ``events_before_response`` makes
    a control command's first webhook arrive before its HTTP response.

    Rules target single items, e.g. ``plan.drop_webhook(event_type="calling.call.play",
    state="finished")`` or ``plan.fail_command(429, command="dial", count=2)``.
    """

    seed: int = 0
    webhook_delay: float = 0.0
    webhook_jitter: float = 0.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    terminal_first_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    server_error_rate: float = 0.0
    server_error_status: int = 500
    reset_rate: float = 0.0
    events_before_response: bool = False
    webhook_rules: list[WebhookRule] = field(default_factory=list)
    command_rules: list[CommandRule] = field(default_factory=list)
    _rngs: dict[str, random.Random] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "drop_rate",
            "duplicate_rate",
            "reorder_rate",
            "terminal_first_rate",
            "rate_limit_rate",
            "server_error_rate",
            "reset_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: must be within 0..1, not {value!r}")
        if self.server_error_status < 500:
            raise ValueError("server_error_status: must be a 5xx status")

    # ------------------------------------------------------------------ rule builders

    def drop_webhook(
        self,
        *,
        event_type: str | None = None,
        state: str | None = None,
        control_id: str | None = None,
        nth: int = 1,
        count: int = 1,
    ) -> WebhookRule:
        """Drop the ``nth`` (1-based) webhook matching the filter (``count`` of them)."""
        return self._add_webhook_rule("drop", event_type, state, control_id, nth, count, 0.0)

    def duplicate_webhook(
        self,
        *,
        event_type: str | None = None,
        state: str | None = None,
        control_id: str | None = None,
        nth: int = 1,
        count: int = 1,
    ) -> WebhookRule:
        """Deliver the ``nth`` matching webhook twice."""
        return self._add_webhook_rule("duplicate", event_type, state, control_id, nth, count, 0.0)

    def delay_webhook(
        self,
        seconds: float,
        *,
        event_type: str | None = None,
        state: str | None = None,
        control_id: str | None = None,
        nth: int = 1,
        count: int = 1,
    ) -> WebhookRule:
        """Hold the ``nth`` matching webhook back ``seconds`` (simulated) before sending."""
        return self._add_webhook_rule("delay", event_type, state, control_id, nth, count, seconds)

    def reorder_webhook(
        self,
        *,
        event_type: str | None = None,
        state: str | None = None,
        control_id: str | None = None,
        nth: int = 1,
        count: int = 1,
    ) -> WebhookRule:
        """Send the ``nth`` matching webhook after the next one of the same operation."""
        return self._add_webhook_rule("reorder", event_type, state, control_id, nth, count, 0.0)

    def fail_command(
        self,
        status: int = 500,
        *,
        command: str | None = None,
        nth: int = 1,
        count: int = 1,
        retry_after: float | None = None,
    ) -> CommandRule:
        """Answer the ``nth`` matching command (``count`` of them) with ``status``."""
        rule = CommandRule("status", status, command, nth, count, retry_after)
        self.command_rules.append(rule)
        return rule

    def reset_command(
        self,
        *,
        command: str | None = None,
        nth: int = 1,
        count: int = 1,
        after_processing: bool = False,
    ) -> CommandRule:
        """Close the connection of the ``nth`` matching command without a response.

        With ``after_processing=True`` the command is carried out first (the dangerous
        case: a retried ``dial`` would create a second call).
        """
        rule = CommandRule("reset", 0, command, nth, count, None, after_processing)
        self.command_rules.append(rule)
        return rule

    # ------------------------------------------------------------------ JSON form

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        """Build a plan from its JSON form (see the module docstring).

        Raises :class:`ValueError` naming the offending key, e.g.
        ``webhook_rules[1].action: must be one of ...``.
        """
        if not isinstance(data, Mapping):
            raise ValueError("fault plan: must be a JSON object")
        settings = {f.name: f for f in fields(cls) if not f.name.startswith("_")}
        unknown = sorted(set(data) - set(settings))
        if unknown:
            raise ValueError(f"{unknown[0]}: not a fault plan setting")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "webhook_rules":
                values[name] = _rules(value, name, _WEBHOOK_RULE_KEYS, _webhook_rule)
            elif name == "command_rules":
                values[name] = _rules(value, name, _COMMAND_RULE_KEYS, _command_rule)
            elif name == "events_before_response":
                values[name] = _bool(value, name)
            elif name in ("seed", "server_error_status"):
                values[name] = _int(value, name)
            else:
                values[name] = _float(value, name)
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaultPlan:
        """Read a plan from a JSON file (see :meth:`from_dict`)."""
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"fault plan: not JSON ({exc})") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this plan (rule counters are left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_") or f.name in ("webhook_rules", "command_rules"):
                continue
            out[f.name] = getattr(self, f.name)
        out["webhook_rules"] = [
            {k: getattr(r, k) for k in sorted(_WEBHOOK_RULE_KEYS)} for r in self.webhook_rules
        ]
        out["command_rules"] = [
            {k: getattr(r, k) for k in sorted(_COMMAND_RULE_KEYS)} for r in self.command_rules
        ]
        return out

    def clear(self) -> None:
        """Remove every rule and set every rate back to zero."""
        self.webhook_delay = self.webhook_jitter = 0.0
        self.drop_rate = self.duplicate_rate = self.reorder_rate = 0.0
        self.terminal_first_rate = self.rate_limit_rate = 0.0
        self.server_error_rate = self.reset_rate = 0.0
        self.events_before_response = False
        self.webhook_rules.clear()
        self.command_rules.clear()

    # ------------------------------------------------------------------ decisions

    def _chance(self, kind: str, rate: float) -> bool:
        if rate <= 0.0:
            return False
        rng = self._rngs.get(kind)
        if rng is None:
            rng = self._rngs[kind] = random.Random(f"{self.seed}:{kind}")
        return rng.random() < rate

    def _add_webhook_rule(
        self,
        action: WebhookAction,
        event_type: str | None,
        state: str | None,
        control_id: str | None,
        nth: int,
        count: int,
        delay: float,
    ) -> WebhookRule:
        if nth < 1 or count < 1:
            raise ValueError("nth: must be >= 1 (and count >= 1)")
        rule = WebhookRule(action, event_type, state, control_id, nth, count, delay)
        self.webhook_rules.append(rule)
        return rule

    def webhook_fault(
        self, event_type: str, state: str | None, control_id: str | None
    ) -> WebhookFault:
        """Decide the fault for one outgoing webhook (advances rule counters)."""
        drop = duplicate = reorder = False
        delay = 0.0
        for rule in self.webhook_rules:
            if not rule.matches(event_type, state, control_id):
                continue
            rule.seen += 1
            if rule.nth <= rule.seen < rule.nth + rule.count:
                if rule.action == "drop":
                    drop = True
                elif rule.action == "duplicate":
                    duplicate = True
                elif rule.action == "reorder":
                    reorder = True
                else:
                    delay += rule.delay
        drop = drop or self._chance("drop", self.drop_rate)
        duplicate = duplicate or self._chance("duplicate", self.duplicate_rate)
        reorder = reorder or self._chance("reorder", self.reorder_rate)
        if self.webhook_delay > 0.0 or self.webhook_jitter > 0.0:
            delay += self.webhook_delay
            if self.webhook_jitter > 0.0:
                rng = self._rngs.get("jitter")
                if rng is None:
                    rng = self._rngs["jitter"] = random.Random(f"{self.seed}:jitter")
                delay += rng.random() * self.webhook_jitter
        if not (drop or duplicate or reorder or delay):
            return _NO_WEBHOOK_FAULT
        return WebhookFault(drop=drop, duplicate=duplicate, reorder=reorder, delay=delay)

    def terminal_first(self) -> bool:
        """Whether the next operation sends its terminal event before its start event."""
        return self._chance("terminal_first", self.terminal_first_rate)

    def command_fault(self, command: str) -> CommandFault | None:
        """Decide the fault for one incoming command, or None."""
        for rule in self.command_rules:
            if rule.command is not None and rule.command != command:
                continue
            rule.seen += 1
            if rule.nth <= rule.seen < rule.nth + rule.count:
                return CommandFault(
                    rule.action,
                    rule.status,
                    rule.retry_after
                    if rule.retry_after is not None
                    else (self.retry_after if rule.status == 429 else None),
                    rule.after_processing,
                )
        if self._chance("reset", self.reset_rate):
            return CommandFault("reset")
        if self._chance("rate_limit", self.rate_limit_rate):
            return CommandFault("status", 429, self.retry_after)
        if self._chance("server_error", self.server_error_rate):
            return CommandFault("status", self.server_error_status)
        return None


# ---------------------------------------------------------------------------- JSON helpers

_WEBHOOK_ACTIONS = ("drop", "duplicate", "delay", "reorder")
_COMMAND_ACTIONS = ("status", "reset")
_WEBHOOK_RULE_KEYS = frozenset(
    ("action", "event_type", "state", "control_id", "nth", "count", "delay")
)
_COMMAND_RULE_KEYS = frozenset(
    ("action", "status", "command", "nth", "count", "retry_after", "after_processing")
)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: must be true or false")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: must be an integer")
    return value


def _float(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{where}: must be a number")
    if value < 0:
        raise ValueError(f"{where}: must be >= 0")
    return float(value)


def _opt_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: must be a string or null")
    return value


def _count(rule: Mapping[str, Any], key: str, where: str) -> int:
    value = _int(rule.get(key, 1), f"{where}.{key}")
    if value < 1:
        raise ValueError(f"{where}.{key}: must be >= 1")
    return value


def _rules(value: Any, name: str, keys: frozenset[str], build: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name}: must be a list of rule objects")
    out = []
    for i, rule in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(rule, Mapping):
            raise ValueError(f"{where}: must be an object")
        unknown = sorted(set(rule) - keys)
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: not a rule setting")
        out.append(build(rule, where))
    return out


def _webhook_rule(rule: Mapping[str, Any], where: str) -> WebhookRule:
    action = rule.get("action")
    if action not in _WEBHOOK_ACTIONS:
        raise ValueError(f"{where}.action: must be one of {', '.join(_WEBHOOK_ACTIONS)}")
    return WebhookRule(
        cast("WebhookAction", action),
        event_type=_opt_str(rule.get("event_type"), f"{where}.event_type"),
        state=_opt_str(rule.get("state"), f"{where}.state"),
        control_id=_opt_str(rule.get("control_id"), f"{where}.control_id"),
        nth=_count(rule, "nth", where),
        count=_count(rule, "count", where),
        delay=_float(rule.get("delay", 0.0), f"{where}.delay"),
    )


def _command_rule(rule: Mapping[str, Any], where: str) -> CommandRule:
    action = rule.get("action")
    if action not in _COMMAND_ACTIONS:
        raise ValueError(f"{where}.action: must be one of {', '.join(_COMMAND_ACTIONS)}")
    status = _int(rule.get("status", 500 if action == "status" else 0), f"{where}.status")
    if action == "status" and not 400 <= status <= 599:
        raise ValueError(f"{where}.status: must be an HTTP error status (400..599)")
    retry_after = rule.get("retry_after")
    return CommandRule(
        cast("CommandAction", action),
        status=status,
        command=_opt_str(rule.get("command"), f"{where}.command"),
        nth=_count(rule, "nth", where),
        count=_count(rule, "count", where),
        retry_after=None if retry_after is None else _float(retry_after, f"{where}.retry_after"),
        after_processing=_bool(rule.get("after_processing", False), f"{where}.after_processing"),
    )
