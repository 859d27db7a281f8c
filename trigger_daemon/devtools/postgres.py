"""A private PostgreSQL cluster for tests and benchmarks: Debian's `postgresql` package,
`initdb` and `pg_ctl` in a temporary directory, listening on 127.0.0.1 on a free port.

No Docker and no system service: the cluster lives in a directory of its own and is removed
when stopped. initdb refuses to run as root, so as root every server command runs as the
`postgres` user the Debian package creates (`runuser -u postgres -- …`). When PostgreSQL is
not installed, `PostgresCluster.start()` raises with the command that installs it; tests
fail then, they never skip (scripts/test.sh installs it before running them).

Each test gets a database of its own (`new_database()`: CREATE DATABASE copies template1,
a few milliseconds); the superuser is `postgres` and authentication is `trust`, on the
loopback address only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "postgres"
_SERVER_USER = "postgres"  # who runs the server when the tests run as root
_START_TIMEOUT_SECONDS = 60
_INSTALL_HINT = (
    "PostgreSQL is not installed: the store's tests need `initdb` and `pg_ctl` from Debian's "
    "`postgresql` package. Install it with `apt-get update && apt-get install -y postgresql` "
    "(scripts/test.sh and .ci/run do this when it is missing), or set PG_BINDIR to a "
    "directory holding initdb and pg_ctl."
)


class PostgresNotAvailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/*/bin holding initdb (or $PG_BINDIR)."""
    candidates = [os.environ["PG_BINDIR"]] if os.environ.get("PG_BINDIR") else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise PostgresNotAvailable(_INSTALL_HINT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One running cluster. `start()` it, `stop()` it (the directory goes with it)."""

    def __init__(self, bindir: Path, directory: Path, port: int) -> None:
        self.bindir = bindir
        self.directory = directory
        self.port = port
        self._as_server_user: list[str] = (
            ["runuser", "-u", _SERVER_USER, "--"] if os.geteuid() == 0 else []
        )

    @classmethod
    def start(cls, *, port: int | None = None) -> PostgresCluster:
        """initdb a new cluster in a temporary directory and start it; about a second."""
        bindir = find_bindir()
        directory = Path(tempfile.mkdtemp(prefix="trigger-daemon-pg-"))
        cluster = cls(bindir, directory, port or _free_port())
        try:
            if os.geteuid() == 0:
                server_user = pwd.getpwnam(_SERVER_USER)
                os.chown(directory, server_user.pw_uid, server_user.pw_gid)
            cluster._run(
                "initdb",
                "--pgdata",
                str(cluster.data),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            )
            cluster.resume()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def resume(self) -> None:
        """Start the server (again, after `pause()`) and wait until it accepts connections."""
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.directory}",
                "-c max_connections=300",
                # A test cluster: durability is not what is being tested here.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log_file),
            "--wait",
            "--timeout",
            str(_START_TIMEOUT_SECONDS),
            "-o",
            options,
        )

    def pause(self) -> None:
        """Stop the server, keeping its data (`resume()` starts it again)."""
        self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "fast", "--wait")

    def stop(self) -> None:
        """Stop the server and delete the cluster's directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.pause()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def new_database(self, prefix: str = "test") -> str:
        """Create an empty database and return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql as the superuser; return its unaligned output."""
        done = subprocess.run(
            [
                str(self.bindir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "--set",
                "ON_ERROR_STOP=1",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--username",
                SUPERUSER,
                "--dbname",
                database,
                "--command",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_server_user, str(self.bindir / program), *args]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_SECONDS + 30,
            cwd=self.directory,
            check=False,
        )
        if done.returncode != 0:
            log = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log}".rstrip()
            )
