"""`trigger-daemon dev`: the demo's outside systems on their own, for trying `run` by hand.

Starts Tansu with the topics the example config reads (`ledger`, `payments`) and its
dead-letter topic, and the stub orchestration API, prints how to point a daemon at them, and
keeps both up until Ctrl-C, SIGTERM or a hangup, which stop them both.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from trigger_daemon.devtools.broker import TansuBroker
from trigger_daemon.devtools.stub_orchestration import StubOrchestration
from trigger_daemon.lifecycle import STOP_SIGNALS, install_stop_signals

TOPICS = ("ledger", "payments", "trigger-daemon-dlq")


async def run_dev(say: Callable[[str], None], broker_port: int, stub_port: int) -> None:
    """Port 0 picks a free one."""
    stop = asyncio.Event()
    install_stop_signals(stop, (*STOP_SIGNALS, signal.SIGHUP))
    async with TansuBroker(broker_port or None) as broker:
        await broker.create_topics(list(TOPICS), partitions=3)
        stub = StubOrchestration()
        await stub.start(port=stub_port)
        async with stub:
            say(f"Kafka (Tansu) at {broker.bootstrap_servers}, topics {', '.join(TOPICS)}")
            say(f"stub orchestration API at {stub.url} (its calls: {stub.url}/_stub/calls)")
            say("in another terminal:")
            say(
                f"  TRIGGER_DAEMON_KAFKA__BOOTSTRAP_SERVERS={broker.bootstrap_servers} "
                f"TRIGGER_DAEMON_ORCHESTRATION__BASE_URL={stub.url}/api/orchestration "
                "trigger-daemon run --config config/trigger-daemon.yaml"
            )
            say(
                "  python -m trigger_daemon.devtools.demo publish "
                f"--bootstrap-servers {broker.bootstrap_servers}"
            )
            say("Ctrl-C stops both")
            await stop.wait()
