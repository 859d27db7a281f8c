"""ScriptedWorkflowApi: `ports.WorkflowApi` answering from a script, recording every request.

An answer is a `CallAttempt` (build one with `succeeded`, `transient` or `permanent`) or an
exception, which the request raises. Answers are taken in request order, from the script of
the requested workflow when it has one, else from the shared one; the last answer of a
script repeats. With no script at all every request succeeds, and, as the orchestration API
does for an Idempotency-Key it has seen, a key asked again gets the same instance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trigger_daemon.ports import CallAttempt, WorkflowApi

Answer = CallAttempt | Exception


def succeeded(instance_id: str = "instance-1", status_code: int = 201) -> CallAttempt:
    """The API started (or had started) a workflow instance."""
    return CallAttempt(instance={"id": instance_id}, status_code=status_code)


def transient(
    error: str = "HTTP 503: unavailable",
    status_code: int | None = 503,
    retry_after: float | None = None,
) -> CallAttempt:
    """A failure worth trying again (a 5xx, a 429, a lost connection: `status_code=None`)."""
    return CallAttempt(
        error=error, status_code=status_code, transient=True, retry_after=retry_after
    )


def permanent(error: str = "HTTP 404: no such workflow", status_code: int = 404) -> CallAttempt:
    """A failure that trying again will not change."""
    return CallAttempt(error=error, status_code=status_code)


@dataclass(frozen=True, slots=True)
class WorkflowRequest:
    workflow_id: str
    variables: dict[str, str]
    idempotency_key: str
    traceparent: str | None


class ScriptedWorkflowApi:
    def __init__(
        self, *answers: Answer, by_workflow: Mapping[str, Sequence[Answer]] | None = None
    ) -> None:
        self._shared = list(answers)
        self._by_workflow = {
            workflow: list(script) for workflow, script in (by_workflow or {}).items()
        }
        self.requests: list[WorkflowRequest] = []
        self.requested = asyncio.Event()  # set at the first request

    @property
    def idempotency_keys(self) -> list[str]:
        """The key of every request, in order."""
        return [request.idempotency_key for request in self.requests]

    async def start_workflow(
        self,
        workflow_id: str,
        variables: Mapping[str, str],
        *,
        idempotency_key: str,
        traceparent: str | None = None,
    ) -> CallAttempt:
        request = WorkflowRequest(workflow_id, dict(variables), idempotency_key, traceparent)
        self.requests.append(request)
        self.requested.set()
        script = self._by_workflow.get(workflow_id, self._shared)
        if not script:
            return succeeded(f"instance-of-{idempotency_key}")
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


if TYPE_CHECKING:

    def _implements_the_workflow_api_port(api: ScriptedWorkflowApi) -> WorkflowApi:
        """mypy checks here that ScriptedWorkflowApi has the method of ports.WorkflowApi."""
        return api
