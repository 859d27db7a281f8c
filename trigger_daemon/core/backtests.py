"""A backtest: what one trigger would have done over a window of past records, counted.

`BacktestTally` evaluates each record exactly as the live pipeline does, with the same
functions (`events.decode`, `TriggerIndex.match` on the document `document_for` builds,
`events.event_id`, `CompiledTrigger.render_vars`), and keeps counts and the first samples only,
so its memory stays bounded whatever the window. `Backtest` is a snapshot of one, as the API
answers it and the store keeps it. Reading the records and asking the store which events already
have an occurrence belong to the shell (engine/backtests.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from trigger_daemon.core.events import Unprocessable, decode, event_id
from trigger_daemon.core.expressions import ExpressionError, document_for
from trigger_daemon.core.matching import TriggerIndex
from trigger_daemon.core.triggers import CompiledTrigger
from trigger_daemon.core.windows import from_epoch_ms

DEFAULT_SAMPLES = 20
MAX_SAMPLES = 1000


class BacktestStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BacktestRefused(ValueError):
    """The request cannot start (an unknown topic, a bad window): the client's to fix."""


class TooManyBacktests(BacktestRefused):
    """As many backtests as allowed are running; the client may try again later."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One matched event, with its vars as a live run would render them, or the error that
    would fail its occurrence."""

    event_id: str
    date: datetime  # the record's timestamp
    topic: str
    partition: int
    offset: int
    vars: dict[str, str] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Backtest:
    id: str
    status: BacktestStatus
    trigger_id: str | None  # None for a trigger that is not stored
    since: datetime
    until: datetime
    topics: tuple[str, ...]
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    scanned: int = 0  # records in the window
    matched: int = 0
    filter_errors: int = 0
    var_errors: int = 0
    already_occurred: int = 0
    unprocessable: int = 0  # records a live run would dead-letter
    samples: tuple[Sample, ...] = ()
    read: int = 0  # records read so far, in the window or not
    total: int = 0  # an estimate of the records to read

    @property
    def is_running(self) -> bool:
        return self.status is BacktestStatus.RUNNING


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    compiled: CompiledTrigger
    trigger_id: str | None  # the stored trigger's id: its occurrences count as already occurred
    since: datetime
    until: datetime
    topics: tuple[str, ...]
    samples: int = DEFAULT_SAMPLES


class HistoryRecord(Protocol):
    """What the tally reads of a record (`ports.SourceRecord` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp_ms(self) -> int | None: ...
    @property
    def headers_map(self) -> dict[str, bytes]: ...


@dataclass(slots=True)
class BacktestTally:
    """The counts of one backtest so far. `count` takes each record inside the window."""

    compiled: CompiledTrigger
    sample_limit: int = DEFAULT_SAMPLES
    scanned: int = 0
    matched: int = 0
    filter_errors: int = 0
    var_errors: int = 0
    already_occurred: int = 0
    unprocessable: int = 0
    read: int = 0
    total: int = 0
    samples: list[Sample] = field(default_factory=list)
    _index: TriggerIndex = field(init=False)

    def __post_init__(self) -> None:
        self._index = TriggerIndex([self.compiled])

    def count(self, record: HistoryRecord) -> str | None:
        """Evaluate one record of the window as the live pipeline would; its event id when
        the trigger matches it (the caller asks the store whether it already occurred)."""
        self.scanned += 1
        decoded = decode(record.value)
        if isinstance(decoded, Unprocessable):
            self.unprocessable += 1
            return None
        if not self._index.has_type(decoded.type):
            return None
        document = document_for(decoded)
        match = self._index.match(decoded, document)
        self.filter_errors += len(match.filter_failures)
        if not match.triggers:
            return None
        self.matched += 1
        identity = event_id(
            decoded, record.headers_map, record.topic, record.partition, record.offset
        )
        rendered: dict[str, str] | None = None
        error: str | None = None
        try:
            rendered = self.compiled.render_vars(document)
        except ExpressionError as exc:
            self.var_errors += 1
            error = str(exc)
        if len(self.samples) < self.sample_limit:
            date = from_epoch_ms(record.timestamp_ms or 0)
            self.samples.append(
                Sample(
                    identity, date, record.topic, record.partition, record.offset, rendered, error
                )
            )
        return identity

    def snapshot(self, backtest: Backtest) -> Backtest:
        """`backtest` with these counts."""
        return replace(
            backtest,
            scanned=self.scanned,
            matched=self.matched,
            filter_errors=self.filter_errors,
            var_errors=self.var_errors,
            already_occurred=self.already_occurred,
            unprocessable=self.unprocessable,
            samples=tuple(self.samples),
            read=self.read,
            total=max(self.total, self.read),
        )


def to_document(backtest: Backtest) -> dict[str, Any]:
    """The backtest as the API answers it (camelCase, RFC 3339 times, absent fields left out):
    what the store keeps and `backtest --json` prints."""
    document = {
        "id": backtest.id,
        "status": str(backtest.status),
        "triggerID": backtest.trigger_id,
        "since": _rfc3339(backtest.since),
        "until": _rfc3339(backtest.until),
        "topics": list(backtest.topics),
        "scanned": backtest.scanned,
        "matched": backtest.matched,
        "filterErrors": backtest.filter_errors,
        "varErrors": backtest.var_errors,
        "alreadyOccurred": backtest.already_occurred,
        "unprocessable": backtest.unprocessable,
        "samples": [_present(_sample_document(sample)) for sample in backtest.samples],
        "progress": {"read": backtest.read, "total": backtest.total},
        "startedAt": _rfc3339(backtest.started_at),
        "finishedAt": None if backtest.finished_at is None else _rfc3339(backtest.finished_at),
        "error": backtest.error,
    }
    return _present(document)


def from_document(document: dict[str, Any]) -> Backtest:
    finished_at = document.get("finishedAt")
    return Backtest(
        id=document["id"],
        status=BacktestStatus(document["status"]),
        trigger_id=document.get("triggerID"),
        since=datetime.fromisoformat(document["since"]),
        until=datetime.fromisoformat(document["until"]),
        topics=tuple(document["topics"]),
        started_at=datetime.fromisoformat(document["startedAt"]),
        finished_at=None if finished_at is None else datetime.fromisoformat(finished_at),
        error=document.get("error"),
        scanned=document["scanned"],
        matched=document["matched"],
        filter_errors=document["filterErrors"],
        var_errors=document["varErrors"],
        already_occurred=document["alreadyOccurred"],
        unprocessable=document["unprocessable"],
        read=document["progress"]["read"],
        total=document["progress"]["total"],
        samples=tuple(
            Sample(
                event_id=sample["eventID"],
                date=datetime.fromisoformat(sample["date"]),
                topic=sample["topic"],
                partition=sample["partition"],
                offset=sample["offset"],
                vars=sample.get("vars"),
                error=sample.get("error"),
            )
            for sample in document["samples"]
        ),
    )


def _sample_document(sample: Sample) -> dict[str, Any]:
    return {
        "eventID": sample.event_id,
        "date": _rfc3339(sample.date),
        "topic": sample.topic,
        "partition": sample.partition,
        "offset": sample.offset,
        "vars": sample.vars,
        "error": sample.error,
    }


def _present(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if value is not None}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
