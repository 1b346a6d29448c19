"""What every part of the daemon reads: the running config and engine, the inputs, the store, clock and metrics.

`Daemon` (daemon.py) is a Core, and hands itself as one to its parts (alerts.py, ops.py, polls.py, bursts.py,
liveness.py): a reload swaps the config and the engine here, and each part reads the new ones at its next use.
A part reaches no other part but those it is handed.
"""

from __future__ import annotations

import threading
import time

from macrowatch.clock import Clock
from macrowatch.config.types import Config
from macrowatch.engine.evaluator import Engine
from macrowatch.runtime.health import MetricsRegistry
from macrowatch.runtime.inputs import Inputs
from macrowatch.store import Store


class Core:
    """The daemon's shared state, and its metrics helpers (which also mark that it is working)."""

    engine: Engine   # set by the Daemon: loaded from the store, swapped by a rebuild or a reload
    inputs: Inputs   # set by the Daemon: which instruments and series have their history (inputs.py)

    def __init__(self, config: Config, store: Store, clock: Clock, metrics: MetricsRegistry | None,
                 stopping: threading.Event):
        self.config = config
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.stopping = stopping
        self.progress = time.monotonic()  # when it last polled or evaluated (monotonic)

    def count(self, name: str, value: float = 1, **labels: str) -> None:
        """Add to the counter `macrowatch_<name>_total`."""
        self.progress = time.monotonic()  # a poll or an evaluation done: the daemon is working, not stuck
        if self.metrics is not None:
            self.metrics.inc(f"macrowatch_{name}_total", value, **labels)

    def gauge(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge `macrowatch_<name>`."""
        if self.metrics is not None:
            self.metrics.set(f"macrowatch_{name}", value, **labels)
