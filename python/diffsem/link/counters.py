"""Event counting and rate-limited warnings of the link's stages (blocks, apps): thread-safe,
since message handlers and Python callers run in different threads."""
from __future__ import annotations

import threading


class Counters:
    """Thread-safe named counters (message handlers and Python callers run in different threads)."""

    def __init__(self, *names):
        self._lock = threading.Lock()
        self._values = {n: 0 for n in names}

    def incr(self, name, by=1):
        with self._lock:
            self._values[name] = self._values.get(name, 0) + by

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._values)


class RateLimitedLog:
    """Log the first few occurrences of a recurring problem, then one in `every`, with the count."""

    def __init__(self, logger, first: int = 5, every: int = 100):
        self.logger, self.first, self.every, self.counts = logger, first, every, {}

    def __call__(self, kind: str, message: str):
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= self.first or n % self.every == 0:
            self.logger.warn(f"{message} ({kind} #{n})")
