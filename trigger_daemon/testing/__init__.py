"""In-memory fakes of the ports (`trigger_daemon.ports`), for tests of the engine, the catalog
and the API without a broker, a database or an orchestration API.

    InMemoryStore           Store: triggers, revision, occurrences, kept as the SQL store keeps them
    ScriptedWorkflowApi     WorkflowApi: answers from a script; records requests and their keys
    AmongGoodCalls          WorkflowApi wrapper: as if other calls succeeded meanwhile (API up)
    ListSource              Source: records from a list; records commits
    ListHistory             History: records from lists, read through a time window
    RecordingDeadLetters    DeadLetterSink: keeps the letters
    RecordingOutcomeEvents  OutcomeSink: keeps the events

The store fake runs the same contract suite as the SQL store (tests/integration/test_store.py),
so the two cannot drift apart.
"""

from trigger_daemon.testing.busy_api import AmongGoodCalls
from trigger_daemon.testing.history import ListHistory
from trigger_daemon.testing.sinks import RecordingDeadLetters, RecordingOutcomeEvents
from trigger_daemon.testing.source import ListSource
from trigger_daemon.testing.store import InMemoryStore
from trigger_daemon.testing.workflow_api import (
    ScriptedWorkflowApi,
    WorkflowRequest,
    permanent,
    succeeded,
    transient,
)

__all__ = [
    "AmongGoodCalls",
    "InMemoryStore",
    "ListHistory",
    "ListSource",
    "RecordingDeadLetters",
    "RecordingOutcomeEvents",
    "ScriptedWorkflowApi",
    "WorkflowRequest",
    "permanent",
    "succeeded",
    "transient",
]
