"""Which triggers of one event type can match an event, without evaluating every filter.

Most filters test one field, alone or in a conjunction (`&&`): an equality, an anything-but,
a numeric range, a prefix, an either-or, whether the field is set. core.filter_shapes picks,
for each trigger, the clause of its filter that rules it out when the event makes that clause
false (one no earlier clause can stop with a failure). Here those clauses are indexed by the
key they read (a path, or `to_number(path)`), and each key by the kind of test:

    equality, either-or    a hash map from the JMESPath-equality key (1 and 1.0 alike, never
                           true) to the triggers wanting it
    contains([...], key)   a hash map keyed by the value itself (Python's `in`, as jmespath)
    anything-but           all the triggers, less those whose literal the value equals
    prefix                 a hash map per prefix, probed with the value's prefixes of the
                           lengths present (at most one probe per character of the value)
    numeric range          sorted bounds and an interval tree (core.number_ranges)
    truthy, falsy          two lists

An event reads each key once (walking the paths' shared prefixes once: core.path_trie) and
collects the triggers its value can match in O(k) plus a lookup or bisection per kind,
whatever the number of triggers: the cost grows with the number of distinct keys, not of
triggers. Other triggers are evaluated in full as before. The candidates keep the triggers'
order and are a superset of the matches; evaluating them gives exactly the triggers and the
filter failures evaluating every filter gives. A candidate is known true when its whole
filter is the clause the index just decided.

A `starts_with` of a value that is not a string raises when evaluated, so those triggers are
candidates then, and their evaluation reports the failure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import jmespath.functions

from trigger_daemon.core.expressions import is_truthy
from trigger_daemon.core.filter_shapes import (
    ContainedIn,
    EqualsAny,
    KeySource,
    KeyTest,
    LookupKey,
    NotEqual,
    NumberRange,
    Prefix,
    Truthiness,
    indexed_clause,
    lookup_key,
)
from trigger_daemon.core.number_ranges import NumberRanges
from trigger_daemon.core.path_trie import PathTrie
from trigger_daemon.core.triggers import CompiledTrigger

Candidate = tuple[CompiledTrigger, bool]  # the trigger, and whether its filter is known true
Hit = tuple[int, CompiledTrigger, bool]  # its position in the index, the trigger, known true
Probe = Callable[[Any, list[Hit]], None]  # adds the hits for the key's value
# Reading an indexed key costs about what evaluating two or three compiled one-field filters
# does (bench/RESULTS.md): below this many triggers of a type, each filter is evaluated.
INDEX_FROM = 3
_FUNCTIONS = jmespath.functions.Functions()
_POSITION = itemgetter(0)


class _Equality:
    def __init__(self, entries: list[tuple[KeyTest, Hit]]) -> None:
        self._by_key: defaultdict[LookupKey, list[Hit]] = defaultdict(list)
        for test, hit in entries:
            assert isinstance(test, EqualsAny)
            for key in test.keys:
                self._by_key[key].append(hit)

    def add_hits(self, value: Any, found: list[Hit]) -> None:
        key = lookup_key(value)
        if key is not None and (hits := self._by_key.get(key)):
            found.extend(hits)


class _Membership:
    def __init__(self, entries: list[tuple[KeyTest, Hit]]) -> None:
        self._by_value: defaultdict[Hashable, list[Hit]] = defaultdict(list)
        for test, hit in entries:
            assert isinstance(test, ContainedIn)
            for value in test.values:
                self._by_value[value].append(hit)

    def add_hits(self, value: Any, found: list[Hit]) -> None:
        if not isinstance(value, list | dict) and (hits := self._by_value.get(value)):
            found.extend(hits)


class _AnythingBut:
    def __init__(self, entries: list[tuple[KeyTest, Hit]]) -> None:
        self._all = [hit for _, hit in entries]
        excluded: defaultdict[LookupKey, set[int]] = defaultdict(set)
        for test, (position, _, _) in entries:
            assert isinstance(test, NotEqual)
            excluded[test.key].add(position)
        self._excluded = {key: frozenset(positions) for key, positions in excluded.items()}

    def add_hits(self, value: Any, found: list[Hit]) -> None:
        key = lookup_key(value)
        excluded = None if key is None else self._excluded.get(key)
        if excluded is None:
            found.extend(self._all)
        else:
            found.extend(hit for hit in self._all if hit[0] not in excluded)


class _Prefixes:
    def __init__(self, entries: list[tuple[KeyTest, Hit]]) -> None:
        self._by_prefix: defaultdict[str, list[Hit]] = defaultdict(list)
        for test, hit in entries:
            assert isinstance(test, Prefix)
            self._by_prefix[test.prefix].append(hit)
        self._lengths = sorted({len(prefix) for prefix in self._by_prefix})
        self._failing = [(position, compiled, False) for _, (position, compiled, _) in entries]

    def add_hits(self, value: Any, found: list[Hit]) -> None:
        if not isinstance(value, str):
            found.extend(self._failing)  # starts_with() raises: evaluation reports it
            return
        for length in self._lengths:
            if length > len(value):
                return
            if hits := self._by_prefix.get(value[:length]):
                found.extend(hits)


class _Ranges:
    def __init__(self, entries: list[tuple[KeyTest, Hit]]) -> None:
        ranges: list[tuple[NumberRange, Hit]] = []
        for test, hit in entries:
            assert isinstance(test, NumberRange)
            ranges.append((test, hit))
        self._ranges = NumberRanges(ranges)

    def add_hits(self, value: Any, found: list[Hit]) -> None:
        # Ordering comparisons hold for numbers only (not booleans); NaN compares false.
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            self._ranges.held(value, found)


class _Truthiness:
    def __init__(self, entries: list[tuple[KeyTest, Hit]]) -> None:
        self._truthy = [
            hit for test, hit in entries if isinstance(test, Truthiness) and test.truthy
        ]
        self._falsy = [
            hit for test, hit in entries if isinstance(test, Truthiness) and not test.truthy
        ]

    def add_hits(self, value: Any, found: list[Hit]) -> None:
        found.extend(self._truthy if is_truthy(value) else self._falsy)


_PROBES: dict[type[KeyTest], Callable[[list[tuple[KeyTest, Hit]]], Any]] = {
    EqualsAny: _Equality,
    ContainedIn: _Membership,
    NotEqual: _AnythingBut,
    Prefix: _Prefixes,
    NumberRange: _Ranges,
    Truthiness: _Truthiness,
}


def _key_probes(entries: list[tuple[KeyTest, Hit]]) -> tuple[Probe, ...]:
    """The probes of the indexed clauses that read one key, one per kind of test."""
    by_kind: defaultdict[type[KeyTest], list[tuple[KeyTest, Hit]]] = defaultdict(list)
    for test, hit in entries:
        by_kind[type(test)].append((test, hit))
    return tuple(_PROBES[kind](kind_entries).add_hits for kind, kind_entries in by_kind.items())


class CandidateIndex:
    """The triggers of one event type (in their order), indexed by the clause that rules
    each of them out."""

    def __init__(self, triggers: Sequence[CompiledTrigger], index_from: int = INDEX_FROM) -> None:
        """With fewer than `index_from` triggers, every one is a candidate."""
        self.triggers = tuple(triggers)
        small = len(self.triggers) < index_from
        self._everyone = [(compiled, False) for compiled in self.triggers] if small else None
        self._always: list[Hit] = []
        by_source: defaultdict[KeySource, list[tuple[KeyTest, Hit]]] = defaultdict(list)
        for position, compiled in enumerate(() if small else self.triggers):
            clause = None if compiled.filter is None else indexed_clause(compiled.filter.syntax)
            if clause is None:
                self._always.append((position, compiled, False))
            else:
                by_source[clause.source].append((clause.test, (position, compiled, clause.whole)))
        # Per path, whether its key is to_number() of it, and the key's probes.
        self._keys = PathTrie(
            (source.path, (source.to_number, _key_probes(entries)))
            for source, entries in by_source.items()
        )

    def __len__(self) -> int:
        return len(self.triggers)

    def candidates(self, document: Mapping[str, Any]) -> Sequence[Candidate]:
        """The triggers that may match `document`, in order; True when the filter is known
        to be true (its whole filter is the clause the index just found true)."""
        if self._everyone is not None:
            return self._everyone
        found = self._always.copy()
        for value, (to_number, probes) in self._keys.values(document):
            if to_number:
                value = _FUNCTIONS.call_function("to_number", [value])
            for add_hits in probes:
                add_hits(value, found)
        if len(found) > 1:
            found.sort(key=_POSITION)
        return [(compiled, known) for _, compiled, known in found]
