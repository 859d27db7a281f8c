"""Long-lived builds run without collections and end frozen, out of later collections' sight;
a catalogue that is replaced leaves no reference cycle, so freezing it leaks nothing."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from trigger_daemon import heap
from trigger_daemon.testing import InMemoryStore
from trigger_daemon.triggers.catalog import TriggerCatalog

from .engine.builders import catalog_with


@pytest.fixture(autouse=True)
def unfrozen_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def tracked(value: object) -> bool:
    """Whether the collector's generations (not the frozen objects) hold `value`."""
    return any(candidate is value for candidate in gc.get_objects())


def test_a_large_build_runs_without_collections_and_what_it_built_is_frozen() -> None:
    with heap.long_lived_build():
        assert not gc.isenabled()
        built = {"triggers": [[n] for n in range(heap._FREEZE_FROM_OBJECTS)]}
    assert gc.isenabled()
    assert not tracked(built)
    assert not tracked(built["triggers"][0])
    made_after = [["young"]]
    assert tracked(made_after)


def test_a_small_build_is_left_to_the_collector() -> None:
    gc.collect()  # the young generation's count starts from nothing
    frozen_before = gc.get_freeze_count()
    with heap.long_lived_build():
        built = {"triggers": [[n] for n in range(100)]}
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before
    assert tracked(built)


def test_collections_resume_when_the_last_of_overlapping_builds_ends() -> None:
    first_inside, second_done = threading.Event(), threading.Event()
    states: list[bool] = []

    def first() -> None:
        with heap.long_lived_build():
            first_inside.set()
            second_done.wait(5)
            states.append(gc.isenabled())

    thread = threading.Thread(target=first)
    thread.start()
    assert first_inside.wait(5)
    with heap.long_lived_build():
        pass
    states.append(gc.isenabled())  # the first build is still under way
    second_done.set()
    thread.join(5)
    assert states == [False, False]
    assert gc.isenabled()


def mixed_definitions(count: int) -> list[dict[str, Any]]:
    """Each indexed shape, a filter no index answers, and vars."""
    posting = "event.transactions[0].postings[0]"
    shapes = [
        f"{posting}.destination == 'treasury:{{n}}'",
        f"{posting}.amount > `{{n}}` && {posting}.amount <= `{{n}}0`",
        "starts_with(event.transactions[0].reference, 'inv-{n}-')",
        f"{posting}.asset == 'EUR/{{n}}' || {posting}.asset == 'GBP/{{n}}'",
        "length(event.transactions[?postings[?amount > `{n}`]]) > `0`",
        "!event.metadata.skip",
    ]
    return [
        {
            "name": f"t{n}",
            "event": "COMMITTED_TRANSACTIONS",
            "workflowID": "wf",
            "filter": shapes[n % len(shapes)].format(n=n),
            "vars": {"txid": "event.transactions[0].id", "n": f"`{n}`"},
        }
        for n in range(count)
    ]


async def test_a_replaced_catalogue_leaves_no_reference_cycle() -> None:
    store = InMemoryStore()
    catalog = await catalog_with(store, *mixed_definitions(60))
    replacement = TriggerCatalog(store)
    await replacement.refresh()
    assert len(replacement.index) == 60
    gc.unfreeze()  # so that collections see the old catalogue's objects too
    gc.collect()  # garbage made before, by anything
    del catalog
    assert gc.collect() == 0
