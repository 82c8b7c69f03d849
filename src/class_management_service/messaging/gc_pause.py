"""Pausing Python's cyclic garbage collector while a consumer holds a decoded poll batch.

A decoded batch of author-match events is ~100,000 container objects (payload models, their
lists, UUIDs) that live only until the batch is planned and hold no reference cycles, so a
collection can never free any of them. While they pile up, every allocation threshold crossed
makes the collector walk them again, and once they outnumber the survivors of the last full
collection by a quarter (the start-up heap is frozen, see ``bootstrap``) every full collection
walks all of them: measured at about two thirds of the consumer's decoding CPU. Collections
are deferred, not skipped: when the last holder lets go, the collector runs as soon as the
next allocation crosses its threshold, by then over the few objects that are still alive.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


class _Pause:
    """Counts holders, so overlapping pauses (two consumers) end with the last one."""

    def __init__(self) -> None:
        self.holders = 0
        self.was_enabled = False


_PAUSE = _Pause()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; usable across ``await``s."""
    if _PAUSE.holders == 0:
        _PAUSE.was_enabled = gc.isenabled()
        gc.disable()
    _PAUSE.holders += 1
    try:
        yield
    finally:
        _PAUSE.holders -= 1
        if _PAUSE.holders == 0 and _PAUSE.was_enabled:
            gc.enable()
