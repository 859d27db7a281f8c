"""`trigger-daemon backfill`: start a backfill through the running daemon's API, and with
`--wait` follow it to its end, with its progress on stderr and the Backfill JSON on stdout.

It asks the daemon rather than running the backfill itself: a backfill's calls must share the
daemon's rate limits and concurrency caps (one flow control per process), and the daemon
holds its lease, saves its position and resumes it after a restart. The command only needs
the config (the API's address, and its token: `TRIGGER_DAEMON_API_TOKEN`, or else the
config's first static token with the write scope). Stopping the command while it waits leaves
the backfill running in the daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from trigger_daemon.config import Settings, load_config, resolve_config_path
from trigger_daemon.core.triggers import yaml_trigger_id
from trigger_daemon.core.windows import parse_time
from trigger_daemon.errors import ConfigError, NotFoundError, StartupError
from trigger_daemon.progress_line import ProgressLine
from trigger_daemon.triggers.files import load_yaml_triggers

EXIT_OK, EXIT_FAILED = 0, 1
TOKEN_ENV = "TRIGGER_DAEMON_API_TOKEN"
_POLL_SECONDS = 0.5
_WRITE_SCOPE = "orchestration:write"


def add_parser(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]  # argparse's own type
    config_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="run a trigger for real over past events, through the running daemon",
        description="Ask the running daemon (its API, from the config) to run a trigger over "
        "the records of its topics stamped in [--since, --until), through the live occurrence "
        "path: events that already have an occurrence of the trigger are skipped. Prints the "
        "Backfill JSON; with --wait, follows it to its end (progress on stderr; exit 1 unless "
        "it succeeded). TIME is RFC 3339 (2024-05-01T00:00:00Z) or a duration back from now "
        "(24h, 7d). The API token comes from TRIGGER_DAEMON_API_TOKEN, or else the config.",
    )
    config_option(backfill)
    backfill.add_argument(
        "--trigger", required=True, metavar="NAME", help="a YAML trigger's name, or a trigger id"
    )
    backfill.add_argument("--since", required=True, type=_time, metavar="TIME")
    backfill.add_argument("--until", type=_time, metavar="TIME", help="default: now")
    backfill.add_argument("--wait", action="store_true", help="follow it until it ends")
    backfill.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(resolve_config_path(args.config))
    settings = config.settings
    names = {d.name for d in load_yaml_triggers(config) if d.name}
    trigger_id = yaml_trigger_id(args.trigger) if args.trigger in names else args.trigger
    body = {"triggerID": trigger_id, "since": _rfc3339(args.since)}
    if args.until is not None:
        body["until"] = _rfc3339(args.until)
    base_url = api_url(settings)
    with httpx.Client(base_url=base_url, headers=_auth_headers(settings), timeout=30) as api:
        started = _answer(api, "POST", "/v2/backfills", base_url, json=body)
        if not args.wait:
            print(json.dumps(started, indent=2))
            return EXIT_OK
        progress = ProgressLine(sys.stderr, "backfill", _figures)
        backfill = started
        while backfill["status"] == "running":
            time.sleep(_POLL_SECONDS)
            backfill = _answer(api, "GET", f"/v2/backfills/{started['id']}", base_url)
            progress.update(backfill)
    progress.finish(backfill)
    print(json.dumps(backfill, indent=2))
    return EXIT_OK if backfill["status"] == "succeeded" else EXIT_FAILED


def api_url(settings: Settings) -> str:
    host = settings.api.host
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: ask it on this machine
        host = "127.0.0.1"
    return f"http://{host}:{settings.api.port}"


def _auth_headers(settings: Settings) -> dict[str, str]:
    token = os.environ.get(TOKEN_ENV)
    if token is None and settings.api.auth.mode == "token":
        writers = [t for t in settings.api.auth.tokens if _WRITE_SCOPE in t.scopes]
        token = writers[0].secret() if writers else None
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def _answer(
    api: httpx.Client, method: str, path: str, base_url: str, **options: Any
) -> dict[str, Any]:
    try:
        response = api.request(method, path, **options)
    except httpx.TransportError as exc:
        raise StartupError(
            f"no daemon answers at {base_url} ({exc}): backfills run inside the daemon; "
            "start it (trigger-daemon run) with this config"
        ) from None
    if response.status_code in (200, 202):
        data: dict[str, Any] = response.json()["data"]
        return data
    try:
        message = response.json().get("errorMessage", response.text)
    except ValueError:
        message = response.text
    if response.status_code == 404:
        raise NotFoundError(message)
    if response.status_code == 400:
        raise ConfigError(f"backfill: {message}")
    raise StartupError(f"backfill: the daemon answered {response.status_code}: {message}")


def _time(text: str) -> datetime:
    try:
        return parse_time(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _figures(backfill: dict[str, Any], _seconds: float) -> tuple[int, int, str]:
    """Records read / total, with what the backfill counts and its status."""
    read = backfill["progress"]["read"]
    counts = (
        f"matched {backfill['matched']:,}, ran {backfill['ran']:,}, "
        f"skipped {backfill['skipped']:,}, failed {backfill['failed']:,} [{backfill['status']}]"
    )
    return read, max(backfill["progress"]["total"], read), counts
