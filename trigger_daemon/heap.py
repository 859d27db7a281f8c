"""Keeping the garbage collector's pauses off the event loop.

A full collection walks every object the collector tracks, holding the GIL, so the event loop
(matching, heartbeats, the API) waits for it. On the benchmark machine the imported libraries
alone are about 150,000 objects (a full collection: ~200 ms) and a catalogue of 10,000
compiled triggers adds about a million (~1.7 s); Python starts one whenever the long-lived
objects have grown by a quarter, so pauses of that length recurred under load.

What lives as long as the process (the modules, the API, the compiled catalogue) is frozen
once built (`gc.freeze`): collections no longer look at it, while reference counting still
frees it when it is replaced. The catalogue, rebuilt at every trigger change, is also built
without collections, which would otherwise walk the growing heap again and again. A
catalogue leaves no reference cycle behind when it is dropped (a test checks this), so
freezing it leaks nothing.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

# The daemon's garbage dies by reference counting: a young collection finds almost no cycles,
# yet walks every young object alive, and records in flight keep tens of thousands alive. At
# 100,000 net allocations young collections are rare (the matched benchmark row spent 0.2 s
# in them instead of 2 s at 10,000), though one may walk up to 100,000 objects (~90 ms here).
# bench/RESULTS.md has the measurements.
_YOUNG_GENERATION_THRESHOLD = 100_000

# A build that leaves fewer objects than this is left to the collector (walking 50,000 takes
# ~70 ms on the benchmark machine). A freeze also keeps whatever reference cycles are alive at
# that moment out of every later collection, so one is made only when it pays.
_FREEZE_FROM_OBJECTS = 50_000

_lock = threading.Lock()
_builds = 0  # long-lived builds under way (threads can overlap)


@contextlib.contextmanager
def long_lived_build() -> Iterator[None]:
    """Build something meant to live long without collections meanwhile; when the last build
    under way ends and the builds made many objects, freeze every object alive, so later
    collections skip them.

    Without the pause, the collections a large build triggers walk the growing heap again and
    again (seconds for 10,000 triggers). Garbage made meanwhile elsewhere waits until then."""
    global _builds
    with _lock:
        _builds += 1
        gc.disable()
    try:
        yield
    finally:
        with _lock:
            _builds -= 1
            # Collections were off: the young generation's count is what the builds made.
            if _builds == 0:
                if gc.get_count()[0] >= _FREEZE_FROM_OBJECTS:
                    # A freeze moves the collector's lists, it does not walk them: no pause.
                    gc.freeze()
                gc.enable()


def freeze_what_start_up_built() -> None:
    """Once the daemon has started: freeze what start-up built (the modules, the API's
    routes, the clients) and collect the young generation less often."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_YOUNG_GENERATION_THRESHOLD, older, oldest)
