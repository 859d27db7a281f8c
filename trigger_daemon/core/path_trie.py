"""Many plain paths walked in one pass, each shared prefix once.

The candidate index reads several keys of each event, and their paths mostly share a prefix
(`event.transactions[0].postings[0].destination`, `...amount`, `...asset`). The paths form a
trie whose chains without branches are merged into one segment (a radix tree), flattened into
a list of segments in depth-first order: each segment is walked (core.paths.walk) from the
value its parent segment found, so a lone path costs one walk, and each value is what walking
its whole path finds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from trigger_daemon.core.paths import Path, walk

Payload = TypeVar("Payload")


@dataclass
class _TrieNode(Generic[Payload]):
    children: dict[str | int, _TrieNode[Payload]] = field(default_factory=dict)
    payloads: list[Payload] = field(default_factory=list)


# One segment: its value goes in slot `depth` (its parent's is in slot `depth - 1`); the steps
# it walks; the payloads of the paths ending there. A plain tuple: unpacked in the loop, it is
# read faster than attributes.
_Segment = tuple[int, Path, tuple[Payload, ...]]


class PathTrie(Generic[Payload]):
    """Paths, each with a payload; `values(document)` gives each payload its path's value."""

    def __init__(self, paths: Iterable[tuple[Path, Payload]]) -> None:
        root: _TrieNode[Payload] = _TrieNode()
        for path, payload in paths:
            node = root
            for step in path:
                node = node.children.setdefault(step, _TrieNode())
            node.payloads.append(payload)
        self._at_root = tuple(root.payloads)  # the path `@`: the document itself
        self._segments: list[_Segment[Payload]] = []
        # Depth first, each node before its children (iterative: paths may be long).
        pending = [(1, step, child) for step, child in reversed(root.children.items())]
        while pending:
            depth, step, node = pending.pop()
            segment = [step]
            while len(node.children) == 1 and not node.payloads:
                ((step, node),) = node.children.items()
                segment.append(step)
            self._segments.append((depth, tuple(segment), tuple(node.payloads)))
            pending.extend((depth + 1, s, c) for s, c in reversed(node.children.items()))
        self._depth = max((segment[0] for segment in self._segments), default=0)

    def values(self, document: Any) -> list[tuple[Any, Payload]]:
        found = [(document, payload) for payload in self._at_root] if self._at_root else []
        slots = [document] * (self._depth + 1)
        for depth, steps, payloads in self._segments:
            value = slots[depth] = walk(slots[depth - 1], steps)
            for payload in payloads:
                found.append((value, payload))
        return found
