"""Decisions as Kubernetes Events with their reasons, counted like client-go's recorder.

Each decision worth saying becomes an Event on what it changed (the pool's
Deployment) and on the Spillover resource, the way the HPA writes
``SuccessfulRescale`` on its target: ``kubectl describe deploy`` tells the story.

Repeats are folded as client-go's EventCorrelator folds them, so a flapping
decision costs one Event object, not one per tick:

- the same object, type, reason and message again: the existing Event's count goes
  up and its lastTimestamp moves (a PATCH), no new object;
- more than ``SIMILAR_LIMIT`` events of the same object, type and reason with
  different messages within ``SIMILAR_WINDOW_S``: further ones are written as one
  Event whose message starts "(combined from similar events): " and shows the latest,
  itself counted.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass

from spillover.drivers.kube_events import EventSink, ObjectRef
from spillover.errors import SpilloverError

logger = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"
SIMILAR_LIMIT = 10
SIMILAR_WINDOW_S = 600.0
CACHE_ENTRIES = 4096
"""client-go's LRU size: enough for every object's recent events, bounded."""
COMBINED = "(combined from similar events): "


@dataclass(frozen=True)
class Happening:
    """One Event to write: about what, Normal or Warning, why."""

    about: ObjectRef
    kind: str
    reason: str
    message: str


@dataclass
class _Written:
    sink: EventSink
    name: str
    count: int


class EventRecorder:
    """Writes Happenings, folding repeats; an API failure is logged, never raised."""

    def __init__(self) -> None:
        self._written: OrderedDict[tuple[str, ...], _Written] = OrderedDict()
        self._similar: dict[tuple[str, ...], deque[float]] = {}

    def record(self, happening: Happening, sink: EventSink, at: float) -> None:
        """Write it through `sink` (the cluster the object lives in)."""
        about = happening.about
        similar_key = (about.uid, about.namespace, about.name, happening.kind, happening.reason)
        message, key = happening.message, (*similar_key, happening.message)
        if self._too_many_similar(similar_key, at):
            # One Event stands for the rest; it shows the latest message.
            message, key = COMBINED + happening.message, (*similar_key, COMBINED)
        try:
            self._write(key, happening, sink, message, at)
        except SpilloverError as error:
            logger.warning(
                "could not record event %s on %s: %s", happening.reason, about.name, error
            )

    def _too_many_similar(self, key: tuple[str, ...], at: float) -> bool:
        times = self._similar.setdefault(key, deque())
        while times and times[0] < at - SIMILAR_WINDOW_S:
            times.popleft()
        times.append(at)
        return len(times) > SIMILAR_LIMIT

    def _write(
        self, key: tuple[str, ...], happening: Happening, sink: EventSink, message: str, at: float
    ) -> None:
        earlier = self._written.get(key)
        if earlier is not None:
            earlier.count += 1
            namespace = happening.about.namespace
            if earlier.sink.count_repeat(namespace, earlier.name, earlier.count, at, message):
                self._written.move_to_end(key)
                return
        name = sink.create(happening.about, happening.kind, happening.reason, message, at)
        self._written[key] = _Written(sink, name, 1)
        self._written.move_to_end(key)
        while len(self._written) > CACHE_ENTRIES:
            self._written.popitem(last=False)
