"""Prometheus metrics of a ``CallSession`` (the ``metrics`` extra: ``prometheus-client``).

Turn them on with ``ReceiverSettings(metrics_path="/metrics")``: the session's receiver
(standalone, ``session.webhook_app()`` or ``session.asgi_app()``) then answers GET
requests at that path with the Prometheus text format (OpenMetrics when the scraper asks
for it). What it serves:

* the session's counters (``CallSession.stats()``: receiver, correlation registry,
  transport, inbound calls), read at scrape time by ``SessionCollector`` -- nothing is
  counted twice on the webhook path;
* ``signalwire_calls_webhook_to_waiter_seconds``, a histogram of the time from the
  receiver beginning to handle a webhook's body to the wait it completes being resolved
  (see ``SessionMetrics``).

Each session has its own ``CollectorRegistry`` (``session.metrics.registry``), so two
sessions in one process do not clash; register it nowhere else, or serve it yourself
(``prometheus_client.generate_latest(session.metrics.registry)``). The names, types and
meanings are listed in the documentation's metrics page.

    session = CallSession(..., receiver=ReceiverSettings(metrics_path="/metrics"))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

try:
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "signalwire_calls.metrics needs the prometheus-client package, which the "
        "'metrics' extra installs: pip install 'signalwire_calls[metrics]'"
    ) from exc

from ._bus_redis import BusStats
from ._core import RegistryStats
from ._inbound import InboundStats
from ._transport import TransportStats
from .receiver import ReceiverStats

__all__ = ["DEFAULT_BUCKETS", "PREFIX", "SessionCollector", "SessionMetrics", "StatsSnapshot"]

#: The prefix of every metric name.
PREFIX = "signalwire_calls"

#: Buckets (seconds) of the webhook-to-waiter histogram: the library's part is a few to
#: tens of microseconds; the upper buckets catch a process that stalled meanwhile.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


class StatsSnapshot(Protocol):
    """What ``SessionCollector`` reads: the shape of ``CallSession.stats()``."""

    @property
    def receiver(self) -> ReceiverStats | None: ...
    @property
    def registry(self) -> RegistryStats: ...
    @property
    def transport(self) -> TransportStats: ...
    @property
    def commands_sent(self) -> int: ...
    @property
    def inbound(self) -> InboundStats | None: ...
    @property
    def bus(self) -> BusStats | None: ...


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _labelled(
    name: str, doc: str, label: str, values: Iterable[tuple[str, float]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=[label])
    for key, value in values:
        family.add_metric([key], value)
    return family


class SessionCollector(Collector):
    """Reads a session's counters when Prometheus scrapes (a custom collector: nothing
    is kept twice). ``stats`` is ``session.stats`` or anything returning its shape.

    Receiver metrics appear once the session has a receiver (standalone, or after
    ``webhook_app()``/``asgi_app()``); inbound ones once it has ``on_inbound``.
    """

    def __init__(self, stats: Callable[[], StatsSnapshot]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        receiver = stats.receiver
        if receiver is not None:
            yield from _receiver_metrics(receiver)
        yield from _registry_metrics(stats.registry)
        yield _counter(
            "commands_sent", "Commands the session sent (retries not counted)", stats.commands_sent
        )
        yield from _transport_metrics(stats.transport)
        inbound = stats.inbound
        if inbound is not None:
            yield from _inbound_metrics(inbound)
        bus = stats.bus
        if bus is not None:
            yield from _bus_metrics(bus)


def _receiver_metrics(r: ReceiverStats) -> Iterator[Metric]:
    yield _counter("webhooks_received", "Webhook requests that reached the receiver", r.received)
    yield _counter("webhooks_accepted", "Webhook requests answered 200", r.accepted)
    yield _labelled(
        "webhooks_rejected",
        "Webhook requests refused, by reason",
        "reason",
        [
            ("signature", r.rejected_signature),
            ("malformed", r.rejected_malformed),
            ("too_large", r.rejected_too_large),
            ("timeout", r.rejected_timeout),
            ("error", r.rejected_error),
            ("protocol", r.rejected_protocol),
            ("unavailable", r.rejected_unavailable),
        ],
    )
    yield _counter(
        "webhooks_forwarded", "Webhooks for another process handed to the router", r.forwarded
    )
    yield _counter("webhooks_unknown", "Accepted webhooks of an unknown type", r.unknown_events)
    yield _counter("webhook_sink_errors", "Accepted webhooks the session failed on", r.sink_errors)


def _bus_metrics(b: BusStats) -> Iterator[Metric]:
    yield _counter("bus_forwarded", "Events put in another process's Redis inbox", b.forwarded)
    yield _counter(
        "bus_dead_lettered", "Events put in the dead-letter stream (owner gone)", b.dead_lettered
    )
    yield _counter(
        "bus_forward_failed", "Events Redis could not take (answered 503)", b.forward_failed
    )
    yield _counter("bus_received", "Events read from this process's Redis inbox", b.received)
    yield _counter("bus_malformed", "Unreadable events read from the inbox (dropped)", b.malformed)
    yield _counter("bus_outages", "Times Redis was lost", b.outages)
    yield _gauge("bus_connected", "1 while the last Redis call succeeded, else 0", b.connected)


def _registry_metrics(g: RegistryStats) -> Iterator[Metric]:
    yield _counter("events_routed", "Webhook events routed to an operation or call", g.routed)
    yield _counter("events_duplicate", "Webhook events seen before (dropped)", g.duplicates)
    yield _counter("events_late", "Webhook events for settled operations or ended calls", g.late)
    yield _counter(
        "events_unmatched", "Webhook events for ids this process never issued", g.unmatched
    )
    yield _counter("events_unknown", "Webhook events with no key or of an unknown type", g.unknown)
    yield _counter(
        "early_events_buffered", "Call-state events that beat their dial's answer", g.buffered
    )
    yield _counter(
        "early_events_replayed", "Early events delivered once the dial answered", g.replayed
    )
    yield _counter(
        "early_events_expired", "Early events dropped (too old, or over bounds)", g.expired
    )
    yield _gauge("early_buffer_events", "Early events waiting now", g.buffered_now)
    yield _gauge("early_buffer_bytes", "Bytes of early events waiting now", g.buffered_bytes)
    yield _gauge(
        "pending_operations", "Operations waiting for their result now", g.pending_operations
    )
    yield _gauge("live_calls", "Calls the session follows now", g.live_calls)
    yield _counter("calls_ended_locally", "Calls the library ended itself", g.calls_ended_locally)
    yield _counter("trace_errors", "Times the trace callback raised", g.trace_errors)


def _transport_metrics(t: TransportStats) -> Iterator[Metric]:
    yield _counter(
        "http_requests", "HTTP attempts to the calling API, retries included", t.requests
    )
    yield _counter("http_retries", "HTTP attempts after a first one", t.retries)
    yield _counter("http_rate_limited", "429 answers", t.rate_limited)
    yield _counter("http_server_errors", "5xx answers", t.server_errors)
    yield _labelled(
        "http_timeouts",
        "HTTP timeouts, by kind",
        "kind",
        [("pool", t.pool_timeouts), ("connect", t.connect_timeouts), ("read", t.read_timeouts)],
    )
    yield _counter("http_connect_errors", "Connections refused, reset or lost", t.connect_errors)
    yield _gauge("command_queue_depth", "Commands waiting for a connection now", t.queued)
    yield _gauge(
        "command_queue_peak", "The most commands ever waiting for a connection", t.queued_peak
    )
    yield _gauge("commands_in_flight", "Commands being sent now", t.in_flight)


def _inbound_metrics(i: InboundStats) -> Iterator[Metric]:
    yield _counter("inbound_requests", "Inbound calls' SWML requests answered", i.received)
    yield _counter("inbound_handled", "Inbound calls handed to the handler", i.handled)
    yield _counter("inbound_overflow", "Inbound calls answered with the overflow SWML", i.overflow)
    yield _gauge("inbound_handlers_running", "Inbound handlers running now", i.running)
    yield _counter("inbound_handler_failures", "Inbound handlers that raised", i.failed)


class SessionMetrics:
    """A session's metrics: its own ``registry`` holding a ``SessionCollector`` and the
    ``webhook_to_waiter`` histogram. ``CallSession`` makes one when its receiver
    settings have a ``metrics_path`` (``session.metrics``).

    The histogram observes, for each wait a webhook completes -- an operation settled
    (``finished()``), a call answered (``answered()``), a call ended (``ended()``, and
    any operation its end settles at once) -- the time from the receiver beginning to
    handle the webhook's body (before its signature is checked) to the wait being
    resolved. Waits completed otherwise (a timer, a 404, an event that beat its dial's
    answer) are not observed; nor is the event loop's delay before the waiting task
    runs.
    """

    def __init__(
        self,
        stats: Callable[[], StatsSnapshot],
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = CollectorRegistry()  # no collect() at registration: stats may not be ready
        self.collector = SessionCollector(stats)
        self.registry.register(self.collector)
        self.webhook_to_waiter = Histogram(
            f"{PREFIX}_webhook_to_waiter_seconds",
            "From the receiver taking a webhook to the wait it completes being resolved",
            buckets=buckets,
            registry=self.registry,
        )
        self._clock = clock
        self._observe = self.webhook_to_waiter.observe
        #: the clock reading when the receiver began the webhook being handled, if any
        self.webhook_started: float | None = None

    # -- the receiver's side (MetricsSource) -----------------------------------------------

    def begin_webhook(self) -> None:
        self.webhook_started = self._clock()

    def end_webhook(self) -> None:
        self.webhook_started = None

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition of ``registry`` in the format ``accept`` asks for (Prometheus
        text by default): (body, content type)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    # -- the core's side (WaitMeter) -------------------------------------------------------

    def observe_wait(self, started: float) -> None:
        self._observe(self._clock() - started)
