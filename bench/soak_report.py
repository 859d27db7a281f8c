"""What a soak run measured, and what it takes from it: bench/soak.py fills a `SoakReport`,
prints `render()`, and exits non-zero when `problems()` names any.

A repeated call is a call made with an Idempotency-Key after that key was already answered
with a 2xx: the workflow ran, and was asked to run again. Calls retried after an error
answer are the retry policy at work, not repeats. The delivery guarantees allow a repeat in
two windows only: a replica killed between the API's answer and its outcome write (a replica
frozen past its session timeout is one too, for the group), and a replica frozen between its
last check of the occurrence and its request leaving, which sends it as it resumes. So every
2xx answer that was followed by another call with its key must have gone to a replica in an
outage, from `before` seconds before it was SIGKILLed or SIGSTOPped to `after` seconds after
it was killed or resumed (an answer to a call it had sent), or the call that followed must
have left a frozen replica within `resumed_send` seconds of its SIGCONT. A repeat is in a
crash window when all of its answers followed by a call were.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

Pair = tuple[str, str]  # trigger id, event id


@dataclass(frozen=True, slots=True)
class TimedCall:
    """One runWorkflow call the stubs answered, `at` seconds after the stream started."""

    at: float
    replica: str
    key: str
    status: int


@dataclass(frozen=True, slots=True)
class FaultRecord:
    name: str
    started_at: float
    ended_at: float
    detail: str


@dataclass(frozen=True, slots=True)
class Outage:
    """A replica SIGKILLed (started == ended) or SIGSTOPped until SIGCONT."""

    replica: str
    started: float
    ended: float


@dataclass(frozen=True, slots=True)
class CrashWindow:
    before: float
    after: float
    resumed_send: float = 1.0  # a call sent by a replica this soon after its SIGCONT

    def holds(self, answered: TimedCall, then: TimedCall, outages: Iterable[Outage]) -> bool:
        """Whether the call `then`, made after `answered`, falls in a window: the answer went
        to a replica about to be killed or frozen, or `then` left a frozen replica as it
        resumed (a call whose last check came before the freeze)."""
        return any(
            (
                outage.replica == answered.replica
                and outage.started - self.before <= answered.at <= outage.ended + self.after
            )
            or (
                outage.replica == then.replica
                and outage.ended > outage.started
                and outage.ended <= then.at <= outage.ended + self.resumed_send
            )
            for outage in outages
        )


@dataclass(frozen=True, slots=True)
class Repeat:
    key: str
    first_answer: TimedCall
    calls_after: int
    unexplained: TimedCall | None  # a 2xx answer outside any crash window, then a call
    next_call: TimedCall | None = None  # the call that followed `unexplained`

    @property
    def in_crash_window(self) -> bool:
        return self.unexplained is None


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    partition: int
    end: int
    committed: int


@dataclass(slots=True)
class SoakReport:
    seconds_streamed: float
    produced: int
    sends_failed: int
    matched: int
    lost: list[Pair]
    statuses: dict[str, int]
    multiple_occurrences: list[Pair]
    unexpected_occurrences: int
    keys_called_more_than_once: int
    repeats: list[Repeat]
    crash_window: CrashWindow
    dead_letters: dict[str, int]
    offsets: list[PartitionOffsets]
    peak_rss_mib: dict[str, float]
    faults: list[FaultRecord]
    replica_exits: list[str] = field(default_factory=list)
    drained_in: float | None = None

    @property
    def repeats_outside_crash_windows(self) -> list[Repeat]:
        return [repeat for repeat in self.repeats if not repeat.in_crash_window]

    def problems(self) -> list[str]:
        """Each broken promise, in one line; empty when the run kept them all."""
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} matched pairs without a succeeded occurrence")
        if self.statuses.get("failed"):
            found.append(f"{self.statuses['failed']} failed occurrences")
        if self.repeats_outside_crash_windows:
            outside = len(self.repeats_outside_crash_windows)
            found.append(f"{outside} repeated calls outside a crash window")
        if self.multiple_occurrences:
            found.append(f"{len(self.multiple_occurrences)} pairs with more than one occurrence")
        behind = [o.partition for o in self.offsets if o.committed < o.end]
        if behind:
            found.append(f"committed offsets behind the end on partitions {behind}")
        if self.replica_exits:
            found.append(f"{len(self.replica_exits)} replica exits nobody asked for")
        return found

    def render(self) -> str:
        lines = [
            "== soak report ==",
            f"streamed          {self.seconds_streamed:.0f} s",
            f"events produced   {self.produced} ({self.sends_failed} sends failed, not counted)",
            f"pairs matched     {self.matched} (trigger, event) pairs expected to run",
            f"lost              {len(self.lost)}{_examples(self.lost)}",
            f"occurrences       {_counts(self.statuses)}",
            f"  >1 per pair     {len(self.multiple_occurrences)}"
            f"{_examples(self.multiple_occurrences)}",
            f"  not expected    {self.unexpected_occurrences}",
            "drained           "
            + ("no (timed out)" if self.drained_in is None else f"in {self.drained_in:.0f} s"),
            f"keys called >1x   {self.keys_called_more_than_once} (retries after errors included)",
            f"repeated calls    {len(self.repeats)} keys called again after a 2xx answer: "
            f"{len(self.repeats) - len(self.repeats_outside_crash_windows)} in a crash window, "
            f"{len(self.repeats_outside_crash_windows)} outside",
            f"  crash window    a 2xx answer to a replica from {self.crash_window.before:g} s "
            f"before its SIGKILL or SIGSTOP to {self.crash_window.after:g} s after it was killed "
            "or resumed, or a call sent by a frozen replica within "
            f"{self.crash_window.resumed_send:g} s after its SIGCONT",
            *_repeat_lines(self.repeats),
            f"dead letters      {_counts(self.dead_letters) or 0}",
            "offsets           partition: committed / end",
            *(
                f"  {o.partition}               {o.committed} / {o.end}"
                + ("" if o.committed == o.end else f"  ({o.end - o.committed} behind)")
                for o in self.offsets
            ),
            "peak RSS          "
            + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in self.peak_rss_mib.items()),
            "faults            (seconds after the stream started)",
            *(
                f"  {f.started_at:6.1f} - {f.ended_at:6.1f}  {f.name:<13} {f.detail}"
                for f in self.faults
            ),
            "replica exits     " + ("; ".join(self.replica_exits) or "none unasked"),
        ]
        problems = self.problems()
        verdict = "FAIL: " + "; ".join(problems) if problems else "PASS: every promise held"
        return "\n".join([*lines, verdict])

    def write_json(self, path: Path) -> None:
        document = asdict(self) | {"problems": self.problems()}
        path.write_text(json.dumps(document, indent=2))


def find_repeats(
    calls: Sequence[TimedCall], outages: Sequence[Outage], window: CrashWindow
) -> tuple[int, list[Repeat]]:
    """How many keys were called more than once, and the repeats (calls after a 2xx)."""
    by_key: defaultdict[str, list[TimedCall]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c.at):
        by_key[call.key].append(call)
    repeats = []
    for key, made in by_key.items():
        first_ok = next((i for i, call in enumerate(made) if 200 <= call.status < 300), None)
        if first_ok is None or first_ok == len(made) - 1:
            continue
        followed = [
            (c, made[i + 1])
            for i, c in enumerate(made[:-1])
            if i >= first_ok and 200 <= c.status < 300
        ]
        unexplained, after = next(
            ((c, then) for c, then in followed if not window.holds(c, then, outages)), (None, None)
        )
        repeats.append(Repeat(key, made[first_ok], len(made) - first_ok - 1, unexplained, after))
    return sum(1 for made in by_key.values() if len(made) > 1), repeats


def occurrence_figures(
    expected: set[Pair], stored: Iterable[tuple[Pair, str]]
) -> tuple[list[Pair], dict[str, int], list[Pair], int]:
    """Lost pairs, occurrences by status, pairs stored more than once, unexpected pairs."""
    per_pair: Counter[Pair] = Counter()
    succeeded: set[Pair] = set()
    statuses: Counter[str] = Counter()
    for pair, status in stored:
        per_pair[pair] += 1
        statuses[status] += 1
        if status == "succeeded":
            succeeded.add(pair)
    lost = sorted(expected - succeeded)
    multiple = sorted(pair for pair, count in per_pair.items() if count > 1)
    unexpected = len(set(per_pair) - expected)
    return lost, dict(statuses), multiple, unexpected


def _by(call: TimedCall | None) -> str:
    return "" if call is None else f" by {call.replica} at {call.at:.1f} s ({call.status})"


def _repeat_lines(repeats: Sequence[Repeat], limit: int = 10) -> list[str]:
    shown = sorted(repeats, key=lambda r: (r.in_crash_window, r.first_answer.at))[:limit]
    lines = [
        f"    {r.key}  first 2xx to {r.first_answer.replica} at {r.first_answer.at:.1f} s, "
        f"{r.calls_after} more call(s), "
        + (
            "in a crash window"
            if r.unexplained is None
            else f"OUTSIDE any crash window: a 2xx to {r.unexplained.replica} at "
            f"{r.unexplained.at:.1f} s, then called again{_by(r.next_call)}"
        )
        for r in shown
    ]
    if len(repeats) > limit:
        lines.append(f"    ... and {len(repeats) - limit} more")
    return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


def _examples(pairs: Sequence[Pair], limit: int = 3) -> str:
    if not pairs:
        return ""
    shown = ", ".join(f"{trigger[:8]}…/{event}" for trigger, event in pairs[:limit])
    return f"  e.g. {shown}"
