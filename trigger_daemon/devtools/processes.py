"""The daemon as a real OS process, as an operator runs it: a YAML config file and the
`trigger-daemon run` console script. Its JSON log goes to a file the caller can read
(the tests, the soak)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from trigger_daemon.devtools.broker import free_port

COMMAND = str(Path(sys.executable).parent / "trigger-daemon")


class DaemonProcess:
    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        name: str = "daemon",
        command: Sequence[str] = (COMMAND,),
    ) -> None:
        """`command`: what runs in place of `trigger-daemon` (it gets `run --config FILE`)."""
        self.command = list(command)
        self.port = free_port()
        self.config = {**config, "api": {"host": "127.0.0.1", "port": self.port}}
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_DAEMON_")}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [*self.command, "run", "--config", str(self.config_path)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )

    async def wait_ready(self, within_seconds: float = 30) -> None:
        """Until /healthz answers (the daemon has started its consumer and API)."""
        deadline = time.monotonic() + within_seconds
        async with httpx.AsyncClient(base_url=self.api_url) as client:
            while time.monotonic() < deadline:
                if self.returncode is not None:
                    raise AssertionError(f"the daemon exited: {self.tail()}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"the daemon did not become healthy: {self.tail()}")

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    async def wait_exit(self, within_seconds: float) -> int:
        """The exit status, once the process has ended on its own."""
        assert self._process is not None
        return await asyncio.to_thread(self._process.wait, within_seconds)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)

    async def terminate(self, within_seconds: float = 60) -> int:
        """SIGTERM, then wait for the exit status."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self._process.wait, within_seconds)

    def stop_quietly(self) -> None:
        """For `finally` blocks: whatever state it is in, it is gone afterwards."""
        self.kill()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("event") == name]

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
