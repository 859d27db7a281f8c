"""The project's exception tree. Adapters convert their libraries' errors into these.

    TriggerDaemonError
    ├── ConfigError              a config file or setting is wrong; the message names file and key
    ├── TriggerValidationError   a trigger is invalid; the message names the field and expression
    ├── NotFoundError            a trigger or occurrence id that does not exist
    ├── ConflictError            the request contradicts the stored state (YAML-managed trigger)
    ├── PartFailed               a long-running part of the daemon died; the daemon stops
    ├── StartupError             a part cannot start for a reason outside the config (port in use)
    └── ExternalError            an outside system failed; `retriable` says whether to try again
        ├── StoreError
        ├── BrokerError
        └── WorkflowCallError
            └── CredentialsRefused   the token endpoint refused our client id or secret

`retriable` is data read by the retry logic, as aiokafka's errors carry it.
"""

from __future__ import annotations


class TriggerDaemonError(Exception):
    """Base of every error the daemon raises on purpose."""

    retriable: bool = False


class ConfigError(TriggerDaemonError):
    """A configuration file or environment setting is invalid."""


class TriggerValidationError(TriggerDaemonError):
    """A trigger definition is invalid. `problems` lists every reason, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class NotFoundError(TriggerDaemonError):
    """The requested trigger or occurrence does not exist."""


class ConflictError(TriggerDaemonError):
    """The request cannot be applied to the current state."""


class PartFailed(TriggerDaemonError):
    """A long-running part (pipeline, API server, trigger watcher) ended while the daemon ran.
    The cause, if it raised, is `__cause__`."""

    def __init__(self, part: str, cause: BaseException | None) -> None:
        self.part = part
        what = f"{type(cause).__name__}: {cause}" if cause is not None else "it returned"
        super().__init__(f"the {part} stopped unexpectedly ({what})")
        self.__cause__ = cause


class StartupError(TriggerDaemonError):
    """A part cannot start though the configuration is valid (its port is in use)."""


class ExternalError(TriggerDaemonError):
    """An outside system failed."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class StoreError(ExternalError):
    """The trigger/occurrence store failed."""


class BrokerError(ExternalError):
    """Kafka failed."""


class WorkflowCallError(ExternalError):
    """The orchestration API failed in a way the client could not classify."""


class CredentialsRefused(WorkflowCallError):
    """The OAuth2 token endpoint refused our client credentials: every call will fail until
    they are fixed, so it is an outage of ours, not a failure of the event."""
