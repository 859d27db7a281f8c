"""docker-compose.yml and the Grafana dashboard, checked without Docker or Grafana.

The compose file is read as compose would read it (merge keys, `${VAR:-default}`,
`$$`), and the daemon's config is loaded the way its container sees it: the image's ENV from
the Dockerfile, the service's environment over it, the bind mounts laid out under a temporary
root. Every metric a dashboard panel queries must exist in trigger_daemon.observability.metrics's
registry, so renaming a metric fails here instead of leaving an empty panel.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY

import trigger_daemon.observability.metrics  # noqa: F401  (registers the daemon's metric families)
from trigger_daemon.config import ENV_PREFIX, LoadedConfig, load_config
from trigger_daemon.triggers.files import load_yaml_triggers

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "trigger-daemon.json"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
DAEMON, STUB, EVENTS = "trigger-daemon", "orchestration", "events"

# The families issue 7 asks the dashboard to chart.
CHARTED_FAMILIES = {
    "trigger_daemon_events_consumed",
    "trigger_daemon_events_matched",
    "trigger_daemon_workflow_calls",
    "trigger_daemon_workflow_call_duration_seconds",
    "trigger_daemon_occurrences",
    "trigger_daemon_dead_letters",
    "trigger_daemon_filter_errors",
    "trigger_daemon_consumer_lag",
    "trigger_daemon_in_flight",
    "process_resident_memory_bytes",
    "process_cpu_seconds",
}


# --- reading docker-compose.yml as compose does -------------------------------------------

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: Any) -> Any:
    """`${VAR:-default}` with no VAR set, and `$$` as `$`; a bare `${VAR}` is an error,
    since `docker compose up` must work with nothing exported."""
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        assert match.group("default") is not None, f"{match.group(0)} has no default"
        return match.group("default")

    return _VARIABLE.sub(substitute, value)


def compose() -> dict[str, Any]:
    document: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE.read_text()))
    return document


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's final stage (`ENV A=1 \\ B=2` form)."""
    stages = (REPO / "Dockerfile").read_text().replace("\\\n", " ").split("\nFROM ")
    env: dict[str, str] = {}
    for line in stages[-1].splitlines():
        if line.startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[4:]))
    return env


def container_env(svc: dict[str, Any]) -> dict[str, str]:
    return {**image_env(), **environment(svc)}


def bind_mounts(svc: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """(host path, container path, read-only) for each bind mount (named volumes left out)."""
    mounts = []
    for volume in svc.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source.startswith((".", "/")):
            mounts.append((REPO / source, target, mode == ["ro"]))
    return mounts


def published(svc: dict[str, Any]) -> dict[int, str]:
    """container port → host address, for `HOST_IP:HOST_PORT:CONTAINER_PORT` entries."""
    ports = {}
    for entry in svc.get("ports", []):
        address, _host_port, container_port = str(entry).split(":")
        ports[int(container_port)] = address
    return ports


def load_as_the_container_would(
    svc: dict[str, Any], root: Path, monkeypatch: pytest.MonkeyPatch
) -> LoadedConfig:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for source, target, _read_only in bind_mounts(svc):
        destination = root / target.lstrip("/")
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    env = container_env(svc)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_config(root / env["TRIGGER_DAEMON_CONFIG"].lstrip("/"))


# --- docker-compose.yml -------------------------------------------------------------------


def test_every_service_has_a_pinned_image_or_the_repositorys_dockerfile() -> None:
    for name, svc in compose()["services"].items():
        if "build" in svc:
            assert (REPO / svc["build"] / "Dockerfile").is_file(), name
            continue
        repository, _, tag = svc["image"].rpartition(":")
        assert repository, f"{name}: image {svc['image']} has no tag"
        assert re.match(r"v?\d", tag), f"{name}: pin a version, not {tag!r}"


def test_the_daemon_config_loads_as_its_container_sees_it_with_postgres_and_the_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = service(DAEMON)

    config = load_as_the_container_would(svc, tmp_path, monkeypatch)
    triggers = load_yaml_triggers(config)  # what `trigger-daemon validate` checks

    examples = yaml.safe_load((REPO / "config" / "triggers" / "formance-examples.yaml").read_text())
    assert {t.name for t in triggers} == {t["name"] for t in examples["triggers"]}
    settings = config.settings
    store = urlsplit(settings.store.url)
    postgres = environment(service("postgres"))
    assert store.scheme == "postgresql"
    assert (store.hostname, store.port) == ("postgres", 5432)
    assert store.username == postgres["POSTGRES_USER"]
    assert store.password == postgres["POSTGRES_PASSWORD"]
    assert store.path == "/" + postgres["POSTGRES_DB"]
    assert settings.api.auth.mode != "none"  # the API listens on the container's network
    assert svc["stop_grace_period"].endswith("s")
    assert float(svc["stop_grace_period"][:-1]) > settings.shutdown_grace_seconds


def test_the_daemon_mounts_its_config_and_triggers_read_only_from_files_in_the_repo() -> None:
    for name, svc in compose()["services"].items():
        for source, target, read_only in bind_mounts(svc):
            assert source.exists(), f"{name}: {source} does not exist"
            assert read_only, f"{name}: {target} should be mounted :ro"
    targets = {target for _, target, _ in bind_mounts(service(DAEMON))}
    assert "/etc/trigger-daemon/triggers" in targets


def test_the_daemon_reaches_the_broker_the_stub_and_its_topics_at_their_compose_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_as_the_container_would(service(DAEMON), tmp_path, monkeypatch).settings
    kafka = environment(service("kafka"))
    init = environment(service("kafka-init"))
    stub = service(STUB)
    events = service(EVENTS)

    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"PLAINTEXT://{settings.kafka.bootstrap_servers}" in advertised
    wanted = {*settings.kafka.topics, settings.kafka.dead_letter_topic}
    assert wanted <= set(init["TOPICS"].split())
    base = urlsplit(settings.orchestration.base_url)
    assert base.hostname == STUB
    assert stub["command"][stub["command"].index("--port") + 1] == str(base.port)
    assert base.port in published(stub)
    assert settings.kafka.bootstrap_servers in events["entrypoint"]


def test_the_api_port_is_published_on_loopback_only() -> None:
    settings_port = yaml.safe_load(
        (REPO / "deploy" / "compose" / "trigger-daemon.yaml").read_text()
    )["api"]["port"]
    assert settings_port in published(service(DAEMON))
    for name, svc in compose()["services"].items():
        for port, address in published(svc).items():
            assert address == "127.0.0.1", f"{name}: port {port} is published on {address}"


def test_the_daemon_starts_after_the_broker_topics_and_database_are_ready() -> None:
    services = compose()["services"]
    depends = services[DAEMON]["depends_on"]

    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["kafka-init"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    for name, svc in services.items():
        for dependency, rule in svc.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "test" in services[dependency].get("healthcheck", {}), (name, dependency)


@pytest.mark.parametrize("name", [STUB, EVENTS])
def test_services_from_the_daemons_image_start_modules_that_accept_their_arguments(
    name: str,
) -> None:
    """`python -m MODULE --help` runs, and names every option the service passes."""
    svc = service(name)
    entrypoint = svc["entrypoint"]
    assert entrypoint[:2] == ["python", "-m"]
    module, *arguments = entrypoint[2:] + svc.get("command", [])
    positionals = [arg for arg in arguments[:1] if not arg.startswith("-")]
    done = subprocess.run(
        [sys.executable, "-m", module, *positionals, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for option in (arg for arg in arguments if arg.startswith("--")):
        assert option in done.stdout, f"{module} does not take {option}"


def test_prometheus_scrapes_the_daemons_metrics_at_its_compose_address() -> None:
    prometheus = service("prometheus")
    [(source, _, _)] = [m for m in bind_mounts(prometheus) if m[1].endswith("prometheus.yml")]
    [job] = yaml.safe_load(source.read_text())["scrape_configs"]
    [target] = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert job["metrics_path"] == "/metrics"
    assert host == DAEMON
    assert int(port) in published(service(DAEMON))


def test_grafana_is_provisioned_with_the_dashboard_and_its_datasource() -> None:
    mounts = {target: source for source, target, _ in bind_mounts(service("grafana"))}
    [provider] = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards.yaml").read_text())["providers"]
    [datasource] = yaml.safe_load((GRAFANA_PROVISIONING / "datasources.yaml").read_text())[
        "datasources"
    ]

    dashboard_path = f"{provider['options']['path']}/{DASHBOARD.name}"
    assert mounts[dashboard_path] == DASHBOARD
    assert mounts["/etc/grafana/provisioning/dashboards/trigger-daemon.yaml"].name == (
        "dashboards.yaml"
    )
    assert datasource["url"] == "http://prometheus:9090"
    variable = next(v for v in dashboard()["templating"]["list"] if v["type"] == "datasource")
    assert variable["current"]["value"] == datasource["uid"]


# --- the Grafana dashboard ----------------------------------------------------------------

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
_PROMQL_WORDS |= {"and", "or", "unless", "offset", "inf", "nan"}


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def variable_queries() -> list[str]:
    queries = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (label matchers, ranges, strings,
    grouping clauses and function names left out)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])[a-zA-Z_:][\w:]*", text):  # not 5m, not 1e3
        followed_by = text[match.end() :].lstrip()[:1]
        if followed_by != "(" and match.group(0).lower() not in _PROMQL_WORDS:
            names.add(match.group(0))
    return names


def registered_series() -> dict[str, str]:
    """Every series name the process exposes → its family, with the suffixes of its type."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    series = {}
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ("",)):
            series[family.name + suffix] = family.name
    return series


def test_metric_names_finds_the_series_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{job=~"$job", x="b c"}[$__rate'
        "_interval]))) / on (instance) group_left max without (x) (b offset 5m) and bool c"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}


def test_every_metric_a_panel_queries_is_one_the_daemon_exposes() -> None:
    exposed = registered_series()
    queries = panel_queries()
    assert queries

    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        unknown = names - exposed.keys()
        assert not unknown, f"{title}: {sorted(unknown)} not in the registry ({expr})"
    for query in variable_queries():
        [name] = re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)", query)
        assert name in exposed, query


def test_the_dashboard_charts_every_family_the_operators_watch() -> None:
    exposed = registered_series()
    charted = {exposed[name] for _, expr in panel_queries() for name in metric_names(expr)}

    assert charted >= CHARTED_FAMILIES
    latency = [expr for _, expr in panel_queries() if "histogram_quantile" in expr]
    assert {expr.split(",")[0] for expr in latency} == {
        f"histogram_quantile({q}" for q in ("0.5", "0.95", "0.99")
    }


def test_the_dashboard_is_importable_with_a_datasource_variable() -> None:
    board = dashboard()
    panels = board["panels"]

    assert board["schemaVersion"] >= 39
    assert board["uid"] == "trigger-daemon"
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    positions = [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in panels]
    assert len(set(positions)) == len(positions)  # no panel hides another
