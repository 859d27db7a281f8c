"""The composition root: builds every part from Settings, runs them, shuts them down.

The only module that knows all adapters. Start order: store (migrations), YAML triggers
reconciled, orchestration client, the API (listening), Kafka; then the long-running parts
(pipeline, API server, trigger refresh, trigger reload, backfills) run side by side under one
supervisor (`lifecycle.supervise`). Stop order is the reverse: the pipeline finishes the
records in hand and commits, the consumer leaves its group, the API stops, clients close. A
part that dies stops the daemon the same way, and `run` raises PartFailed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import asdict
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import structlog

from trigger_daemon import __version__, heap
from trigger_daemon.adapters.api import (
    ApiAuth,
    ApiServer,
    JwksCache,
    JwtAuthenticator,
    StaticTokens,
    create_api,
)
from trigger_daemon.adapters.api.backfills import BackfillHandlers
from trigger_daemon.adapters.api.backtests import BacktestHandlers
from trigger_daemon.adapters.api.schemas import TriggerTest
from trigger_daemon.adapters.api.status import Status, StatusHandlers
from trigger_daemon.adapters.kafka import (
    BrokerWatch,
    KafkaConnection,
    KafkaDeadLetters,
    KafkaOutcomeEvents,
    KafkaPublisher,
    KafkaSource,
)
from trigger_daemon.adapters.kafka.history import KafkaHistory
from trigger_daemon.adapters.orchestration import (
    BearerTokenAuth,
    ClientCredentialsAuth,
    OrchestrationClient,
)
from trigger_daemon.adapters.store import PoolLimits, SqlStore, open_store
from trigger_daemon.config import ApiAuthSettings, LoadedConfig, Settings
from trigger_daemon.core.backtests import Backtest, BacktestRequest
from trigger_daemon.core.occurrences import Occurrence
from trigger_daemon.core.rehearsal import TriggerTestReport
from trigger_daemon.engine.backfills import BackfillLimits, BackfillRunner, Backfills
from trigger_daemon.engine.backtests import Backtests, Progress
from trigger_daemon.engine.calls import WorkflowCaller
from trigger_daemon.engine.flow_control import FlowControl
from trigger_daemon.engine.pipeline import Pipeline
from trigger_daemon.engine.records import LogOnlyDeadLetters, RecordHandler
from trigger_daemon.engine.redrive import Redrive
from trigger_daemon.engine.runner import OccurrenceRunner
from trigger_daemon.engine.tenure import Tenure
from trigger_daemon.errors import StoreError
from trigger_daemon.lifecycle import Part, supervise
from trigger_daemon.observability import rates
from trigger_daemon.observability.loop_lag import watch_loop_lag
from trigger_daemon.observability.tracing import Tracing
from trigger_daemon.ports import DeadLetterSink, Source, WorkflowApi
from trigger_daemon.triggers.catalog import TriggerCatalog
from trigger_daemon.triggers.files import load_yaml_triggers
from trigger_daemon.triggers.reload import TriggerReloader, fingerprint, watched_paths

log = structlog.get_logger(__name__)

_READINESS_STORE_TIMEOUT_SECONDS = 2.0


class Daemon:
    def __init__(self, config: LoadedConfig, tracing: Tracing | None = None) -> None:
        """`tracing`: None sets it up from the OTEL_* variables at start and closes it at
        stop; a test passes its own (and closes it)."""
        self._config = config
        self._tracing = tracing
        self.api_url: str | None = None
        self._api_started = asyncio.Event()
        self._reload_requested = asyncio.Event()  # set by SIGHUP, read by the reloader

    @property
    def settings(self) -> Settings:
        return self._config.settings

    def request_reload(self) -> None:
        """Re-read and apply the YAML triggers soon (the SIGHUP handler calls this)."""
        self._reload_requested.set()

    async def wait_api_started(self) -> str:
        await self._api_started.wait()
        assert self.api_url is not None
        return self.api_url

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> None:
        """Run until `stop` is set (or, with `until_idle`, until every record is handled)."""
        # Taken before reading: an edit made from here on is reloaded once running.
        read_at_start = fingerprint(watched_paths(self._config))
        definitions = load_yaml_triggers(self._config)  # ConfigError before touching anything
        async with AsyncExitStack() as stack:
            # Entered first, closed last: the spans of the final batch are flushed.
            tracing = self._tracing or await stack.enter_async_context(Tracing.from_env())
            store_settings = self.settings.store
            store = await self._open_store(stack)
            catalog = TriggerCatalog(store)
            result = await catalog.reconcile_yaml(definitions)
            log.info("triggers.reconciled", **asdict(result), active=len(catalog.index))
            api = await stack.enter_async_context(self._orchestration_client())
            connection = self._kafka_connection()
            publisher = KafkaPublisher(connection)  # started below, once the API listens
            dead_letters, outcome_events = self._publishing(publisher)
            source = self._source(connection)  # joins the group when entered, below
            broker = BrokerWatch(source.probe, self.settings.kafka.bootstrap_servers)
            caller = self._caller(api)
            runner = OccurrenceRunner(store, caller, outcome_events, tracing)
            redrive = Redrive(catalog, store, runner)
            handler = RecordHandler(catalog, store, runner, dead_letters, tracing)
            backfills = self._backfill_runner(store, catalog, handler, caller)
            activity = rates.RateWindow()
            # Listening before Kafka: a busy port fails the start before the group is joined
            # (no rebalance of the running replicas), and /healthz answers from the start.
            api_server = await self._start_api(
                stack, catalog, store, caller, redrive, source, broker, backfills, activity
            )
            await stack.enter_async_context(publisher)
            await stack.enter_async_context(source)
            tenure = Tenure(
                session_timeout_seconds=self.settings.kafka.session_timeout_ms / 1000,
                heartbeat_interval_seconds=self.settings.kafka.heartbeat_interval_ms / 1000,
            )
            pipeline = Pipeline(
                source,
                handler.holding(tenure),
                tenure=tenure,
                max_in_flight=self.settings.pipeline.max_in_flight,
                ordering_key=self.settings.pipeline.ordering_expression(),
                must_pause=lambda: caller.breaker.is_open,
            )
            reloader = TriggerReloader(
                self._config,
                catalog,
                definitions,
                requested=self._reload_requested,
                read_at_start=read_at_start,
            )
            heap.freeze_what_start_up_built()
            log.info(
                "daemon.started",
                api=self.api_url,
                topics=self.settings.kafka.topics,
                group_id=self.settings.kafka.group_id,
            )
            await supervise(
                [
                    Part("pipeline", partial(pipeline.run, until_idle=until_idle), until_idle),
                    Part("API server", api_server.watch),
                    Part("broker watch", broker.watch),
                    # Triggers changed through another replica's API become active here too.
                    Part(
                        "trigger refresh",
                        partial(catalog.watch, store_settings.poll_interval_seconds),
                    ),
                    # YAML triggers edited on disk, or re-read on SIGHUP, apply without a restart.
                    Part("trigger reload", reloader.watch),
                    Part("event loop watch", watch_loop_lag),
                    Part("pause watch", tenure.watch),
                    Part("backfills", backfills.run),
                    Part("activity rates", activity.watch),
                ],
                stop,
                self.settings.shutdown_grace_seconds,
            )
        log.info("daemon.stopped")

    async def retry_failed(
        self,
        trigger: str,
        since: datetime | None,
        progress: Callable[[Occurrence], None],
    ) -> None:
        """Re-drive the failed occurrences of `trigger` (an id or a name; the `retry-failed`
        command), reporting each as it ends. Works beside a running daemon: it only needs the
        store and the API."""
        async with AsyncExitStack() as stack:
            store = await self._open_store(stack)
            catalog = TriggerCatalog(store)
            await catalog.refresh()
            trigger_id = catalog.find(trigger)
            api = await stack.enter_async_context(self._orchestration_client())
            outcome_events = None
            if self.settings.kafka.events_topic is not None:
                publisher = await stack.enter_async_context(
                    KafkaPublisher(self._kafka_connection())
                )
                _, outcome_events = self._publishing(publisher)
            caller = self._caller(api)
            redrive = Redrive(catalog, store, OccurrenceRunner(store, caller, outcome_events))
            async for occurrence in redrive.retry_all(trigger_id, since):
                progress(occurrence)

    def _caller(self, api: WorkflowApi) -> WorkflowCaller:
        orchestration = self.settings.orchestration
        flow = FlowControl(orchestration.flow_limits())
        return WorkflowCaller(api, orchestration.retry.policy(), flow=flow)

    async def backtest(self, request: BacktestRequest, progress: Progress) -> Backtest:
        """Run one backtest to its end here (the `backtest` command); needs Kafka and, for
        the already-occurred count, the store."""
        async with AsyncExitStack() as stack:
            store = await self._open_store(stack)
            history = KafkaHistory(self._kafka_connection())
            return await Backtests(history, store).run(request, progress)

    def _backtests(self, stack: AsyncExitStack, store: SqlStore) -> Backtests:
        settings = self.settings.backtest
        backtests = Backtests(
            KafkaHistory(self._kafka_connection()),
            store,
            max_running=settings.max_running,
            keep_finished=timedelta(hours=settings.keep_finished_hours),
        )
        stack.push_async_callback(backtests.close)  # running ones are forgotten
        return backtests

    def _backfill_runner(
        self,
        store: SqlStore,
        catalog: TriggerCatalog,
        records: RecordHandler,
        caller: WorkflowCaller,
    ) -> BackfillRunner:
        """Backfills run through the live record handler and the one `caller`: the same
        occurrence path, and one rate limit and concurrency cap per trigger for both."""
        return BackfillRunner(
            store,
            KafkaHistory(self._kafka_connection()),
            _backfill_limits(self.settings),
            catalog=catalog,
            trigger_store=store,
            records=records,
            must_pause=lambda: caller.breaker.is_open,
            ordering_key=self.settings.pipeline.ordering_expression(),
        )

    async def _open_store(self, stack: AsyncExitStack) -> SqlStore:
        settings = self.settings.store
        store = await open_store(
            settings.url, pool=PoolLimits(settings.pool_size, settings.max_overflow)
        )
        stack.push_async_callback(store.close)
        return store

    def _orchestration_client(self) -> OrchestrationClient:
        orchestration = self.settings.orchestration
        auth: httpx.Auth | None = None
        if orchestration.token is not None:
            auth = BearerTokenAuth(orchestration.token.get_secret_value())
        elif orchestration.client_id and orchestration.client_secret and orchestration.token_url:
            auth = ClientCredentialsAuth(
                token_url=orchestration.token_url,
                client_id=orchestration.client_id,
                client_secret=orchestration.client_secret.get_secret_value(),
                scopes=orchestration.scopes or None,
            )
        return OrchestrationClient(
            base_url=orchestration.base_url,
            api_version=orchestration.api_version,
            auth=auth,
            timeout_seconds=orchestration.timeout_seconds,
            # Every record in flight may be waiting on a call: one connection each, opened
            # as demand needs them (a call queued for a free connection costs CPU as well).
            max_connections=self.settings.pipeline.max_in_flight,
            ssl_cafile=orchestration.ssl_cafile,
        )

    def _kafka_connection(self) -> KafkaConnection:
        kafka = self.settings.kafka
        return KafkaConnection(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=kafka.client_id,
            security_protocol=kafka.security_protocol,
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_username=kafka.sasl_username,
            sasl_password=kafka.sasl_password,
            ssl_cafile=kafka.ssl_cafile,
            ssl_certfile=kafka.ssl_certfile,
            ssl_keyfile=kafka.ssl_keyfile,
            ssl_key_password=kafka.ssl_key_password,
            isolation_level=kafka.isolation_level,
        )

    def _publishing(
        self, publisher: KafkaPublisher
    ) -> tuple[DeadLetterSink, KafkaOutcomeEvents | None]:
        kafka = self.settings.kafka
        dead_letters: DeadLetterSink = (
            LogOnlyDeadLetters()
            if kafka.dead_letter_topic is None
            else KafkaDeadLetters(publisher, kafka.dead_letter_topic)
        )
        events = (
            None
            if kafka.events_topic is None
            else KafkaOutcomeEvents(publisher, kafka.events_topic)
        )
        return dead_letters, events

    def _source(self, connection: KafkaConnection) -> KafkaSource:
        kafka = self.settings.kafka
        return KafkaSource(
            connection,
            kafka.topics,
            kafka.group_id,
            kafka.auto_offset_reset,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        )

    async def _start_api(
        self,
        stack: AsyncExitStack,
        catalog: TriggerCatalog,
        store: SqlStore,
        caller: WorkflowCaller,
        redrive: Redrive,
        source: Source,
        broker: BrokerWatch,
        backfill_runner: BackfillRunner,
        activity: rates.RateWindow,
    ) -> ApiServer:
        """The API, serving until the stack closes: after the pipeline has drained."""

        async def readiness() -> dict[str, str | None]:
            try:
                # Bounded: a probe must answer even while the database hangs.
                await asyncio.wait_for(store.ping(), _READINESS_STORE_TIMEOUT_SECONDS)
                store_problem = None
            except StoreError as exc:
                store_problem = str(exc)
            except TimeoutError:
                store_problem = f"no answer within {_READINESS_STORE_TIMEOUT_SECONDS:g} s"
            return {
                "consumer": broker.problem
                or (None if source.joined() else "not in the consumer group yet"),
                "store": store_problem,
                # An open circuit: the orchestration API is failing every call; work waits.
                "orchestration": caller.unavailable_reason,
            }

        api = self.settings.api
        app = create_api(
            catalog,
            store,
            readiness=readiness,
            version=__version__,
            auth=api_auth(api.auth),
            max_body_bytes=api.max_body_bytes,
            retry_occurrence=redrive.retry,
            backtests=BacktestHandlers(
                self._backtests(stack, store), catalog, store, self.settings.kafka.topics
            ),
            backfills=BackfillHandlers(
                Backfills(
                    store,
                    KafkaHistory(self._kafka_connection()),
                    _backfill_limits(self.settings),
                    backfill_runner,
                ),
                catalog,
                store,
                self.settings.kafka.topics,
            ),
            status=StatusHandlers(partial(_status, activity, caller), store),
        )
        server = ApiServer(app, host=api.host, port=api.port)
        stack.push_async_callback(server.close)
        port = await server.start()
        self.api_url = f"http://{api.host}:{port}"
        # Host and bound port: no two live processes share both, and a daemon restarted on
        # the same host and port takes its own backfills back at once.
        backfill_runner.owner = f"{socket.gethostname()}:{port}"
        self._api_started.set()
        return server


def _backfill_limits(settings: Settings) -> BackfillLimits:
    backfill = settings.backfill
    return BackfillLimits(
        max_running=backfill.max_running,
        lease=timedelta(seconds=backfill.lease_seconds),
        max_in_flight=backfill.max_in_flight,
    )


def _status(activity: rates.RateWindow, caller: WorkflowCaller) -> Status:
    """What `GET /v2/status` answers: this process's counters and circuit, now."""
    now = activity.rates()
    return Status(
        events_per_second=now.events_per_second,
        matches_per_second=now.matches_per_second,
        window_seconds=now.seconds,
        in_flight=rates.in_flight(),
        consumer_lag=rates.consumer_lag(),
        circuit=str(caller.breaker.state),
        circuit_reason=caller.unavailable_reason,
    )


def trigger_test_answer(report: TriggerTestReport) -> dict[str, Any]:
    """What `test-trigger` prints: the API's testTrigger answer, field for field."""
    return TriggerTest.of(report).model_dump(mode="json", by_alias=True, exclude_none=True)


def api_auth(settings: ApiAuthSettings) -> ApiAuth | None:
    """The API's authentication from `api.auth`; None for mode `none`."""
    if settings.mode == "token":
        tokens = StaticTokens([(token.secret(), token.scopes) for token in settings.tokens])
        return ApiAuth(tokens, protect_metrics=settings.protect_metrics)
    if settings.mode == "jwt":
        # The config guarantees all three in mode jwt.
        keys = JwksCache(str(settings.jwks_url), max_age_seconds=settings.jwks_cache_seconds)
        verifier = JwtAuthenticator(
            keys,
            issuer=str(settings.issuer),
            audience=str(settings.audience),
            algorithms=settings.algorithms,
            leeway_seconds=settings.leeway_seconds,
        )
        return ApiAuth(verifier, protect_metrics=settings.protect_metrics)
    return None
