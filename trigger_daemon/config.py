"""Settings: one YAML file plus `TRIGGER_DAEMON_<SECTION>__<KEY>` environment overrides.

Loaded once at start. Every problem becomes a ConfigError whose message names the file (or
the environment variable), the key and what is wrong, so the daemon never starts half-right
and never shows a traceback for a typo. Secrets are `SecretStr`: they can come from the
environment only and never print.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import pydantic
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from trigger_daemon.core.expressions import Expression, compile_expression
from trigger_daemon.core.header_values import header_safe
from trigger_daemon.core.retry import RetryPolicy
from trigger_daemon.core.throttle import Limits
from trigger_daemon.errors import ConfigError

ENV_PREFIX = "TRIGGER_DAEMON_"
CONFIG_PATH_ENV = "TRIGGER_DAEMON_CONFIG"


def _without_surrounding_space(value: SecretStr) -> SecretStr:
    """A secret written with `echo` (a Kubernetes secret made from such a file) ends with a
    line break: kept, every call or login made with it would fail."""
    return SecretStr(value.get_secret_value().strip())


# A token, client secret or password, read without surrounding whitespace.
Secret = Annotated[SecretStr, AfterValidator(_without_surrounding_space)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str = "localhost:9092"
    topics: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["ledger", "payments"], min_length=1
    )
    group_id: str = "trigger-daemon"
    client_id: str = "trigger-daemon"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # read_committed: records of a transaction its producer aborted are never acted on (a
    # producer without transactions reads the same either way).
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    # A member silent this long is dropped from the group; a new member's join waits on it
    # too (Tansu takes about half of it), so tests and the demo shorten it.
    session_timeout_ms: int = Field(10_000, ge=500)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    dead_letter_topic: str | None = "trigger-daemon-dlq"
    # Where SUCCEEDED_TRIGGER / FAILED_TRIGGER events go (as Formance publishes them); null: none.
    events_topic: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: str | None = None
    # mTLS: the client certificate chain and its key (encrypted keys take ssl_key_password).
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: Secret | None = None

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> KafkaSettings:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be shorter than session_timeout_ms")
        return self

    @model_validator(mode="after")
    def _security_is_consistent(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        tls = self.security_protocol.endswith("SSL")
        if sasl and (self.sasl_mechanism is None or not self.sasl_username):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        if sasl and self.sasl_password is None:
            raise ValueError("sasl_password is missing (set TRIGGER_DAEMON_KAFKA__SASL_PASSWORD)")
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError("sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL")
        tls_files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if not tls and (any(tls_files) or self.ssl_key_password is not None):
            raise ValueError("ssl_* settings need security_protocol SSL or SASL_SSL")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("a client certificate needs ssl_certfile and ssl_keyfile together")
        return self

    @field_validator("topics", mode="before")
    @classmethod
    def _split_comma_list(cls, value: Any) -> Any:
        # An environment variable can say `ledger,payments` as well as a JSON list.
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class RetrySettings(_Section):
    max_attempts: int = Field(10, ge=1, le=1000)
    initial_backoff_seconds: float = Field(0.5, gt=0)
    max_backoff_seconds: float = Field(60.0, gt=0)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.max_attempts, self.initial_backoff_seconds, self.max_backoff_seconds
        )


class OrchestrationSettings(_Section):
    base_url: str = "http://localhost:8080/api/orchestration"
    api_version: Literal["v1", "v2"] = "v2"
    token: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    token_url: str | None = None
    scopes: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(10.0, gt=0)
    # The CA certificates (PEM) that verify the API and the token endpoint, for a private CA;
    # null: the ones httpx trusts (certifi's, or the SSL_CERT_FILE environment variable's).
    ssl_cafile: str | None = None
    retry: RetrySettings = Field(default_factory=RetrySettings)
    # Daemon-wide flow control, per process (null: none beyond pipeline.max_in_flight).
    max_calls_per_second: float | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, ge=1)

    def flow_limits(self) -> Limits:
        return Limits(
            calls_per_second=self.max_calls_per_second, max_concurrency=self.max_concurrency
        )

    @field_validator("token")
    @classmethod
    def _fits_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("is empty")
        if value is not None and not header_safe(value.get_secret_value()):
            raise ValueError("holds a control character, which no HTTP header can carry")
        return value

    @field_validator("base_url", "token_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> OrchestrationSettings:
        oauth = (self.client_id, self.client_secret, self.token_url)
        if any(oauth) and not all(oauth):
            raise ValueError("OAuth2 needs client_id, client_secret and token_url together")
        if self.token is not None and any(oauth):
            raise ValueError("set either token or client_id/client_secret/token_url, not both")
        return self


class StoreSettings(_Section):
    # Out of reprs: a postgresql:// URL can carry a password.
    url: str = Field("sqlite:///./trigger-daemon.db", repr=False)
    # PostgreSQL connections per replica: pool_size kept open, up to max_overflow more.
    pool_size: int = Field(5, ge=1, le=100)
    max_overflow: int = Field(5, ge=0, le=100)
    # How often a replica checks for triggers changed through another replica's API.
    poll_interval_seconds: float = Field(1.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        value = value.strip()  # a secret file written with `echo` ends with a line break
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB")
        return value


API_READ_SCOPE = "orchestration:read"
API_WRITE_SCOPE = "orchestration:write"
ApiScope = Literal["orchestration:read", "orchestration:write"]


class ApiToken(_Section):
    """One static bearer token: its value (or the environment variable holding it) and scopes."""

    token: SecretStr | None = Field(default=None, min_length=16)
    token_env: str | None = None
    scopes: list[ApiScope] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> ApiToken:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give either token or token_env (the variable that holds it)")
        if self.token_env is not None:
            # Without surrounding whitespace, as orchestration.token: a secret file written
            # with `echo` ends with a line break, and no client would send it.
            value = os.environ.get(self.token_env, "").strip()
            if len(value) < 16:
                raise ValueError(
                    f"environment variable {self.token_env} must hold a token "
                    "of at least 16 characters"
                )
            self.token = SecretStr(value)
        return self

    def secret(self) -> str:
        assert self.token is not None  # _one_source guarantees it
        return self.token.get_secret_value()


class ApiAuthSettings(_Section):
    """Who may call the API: nobody checks (`none`), static tokens, or OAuth2 JWTs."""

    mode: Literal["none", "token", "jwt"] = "none"
    # `none` on a non-loopback host only when this says so explicitly.
    allow_unauthenticated: bool = False
    tokens: list[ApiToken] = Field(default_factory=list)
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    leeway_seconds: float = Field(30.0, ge=0, le=300)
    jwks_cache_seconds: float = Field(300.0, gt=0)
    protect_metrics: bool = False

    @field_validator("algorithms")
    @classmethod
    def _signed_algorithms(cls, value: list[str]) -> list[str]:
        if any(name.lower() == "none" or name.startswith("HS") for name in value):
            raise ValueError("only asymmetric algorithms (RS*, PS*, ES*, EdDSA) are allowed")
        return value

    @model_validator(mode="after")
    def _mode_has_what_it_needs(self) -> ApiAuthSettings:
        if self.mode == "token" and not self.tokens:
            raise ValueError("mode token needs at least one entry in tokens")
        if self.mode == "jwt":
            missing = [key for key in ("jwks_url", "issuer", "audience") if not getattr(self, key)]
            if missing:
                raise ValueError(f"mode jwt needs {', '.join(missing)}")
        return self

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    auth: ApiAuthSettings = Field(default_factory=ApiAuthSettings)
    # Larger request bodies are refused with 413 before they are read.
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    @model_validator(mode="after")
    def _no_open_api_off_loopback(self) -> ApiSettings:
        open_api = self.auth.mode == "none" and not self.auth.allow_unauthenticated
        if open_api and not is_loopback(self.host):
            raise ValueError(
                f"refusing to serve the API on {self.host} without authentication: set "
                "api.auth.mode to token or jwt, or bind api.host to 127.0.0.1, or set "
                "api.auth.allow_unauthenticated: true if a proxy in front authenticates"
            )
        return self


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class PipelineSettings(_Section):
    # Records fetched but not yet finished; fetching pauses at this many, so memory stays
    # flat whatever the backlog. Concurrency comes from distinct ordering keys. Matched
    # records wait on group commits and HTTP answers most of their time: on 2 cores 1,024
    # keeps the event loop busy where 512 leaves it idle a quarter of the time (bench/RESULTS.md).
    max_in_flight: int = Field(1024, ge=1, le=100_000)
    # Records with the same ordering key reach the API in order; different keys run side by
    # side. Default: the Kafka record key (the partition when there is none). A JMESPath
    # expression over the event (e.g. `event.ledger`) orders by its value instead.
    ordering_key: str | None = None

    @field_validator("ordering_key")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compile_expression(value)  # ExpressionError is a ValueError: reported with the key
        return value

    def ordering_expression(self) -> Expression | None:
        return None if self.ordering_key is None else compile_expression(self.ordering_key)


class BacktestSettings(_Section):
    # Backtests running at once in this process (each has its own consumer and one task).
    max_running: int = Field(2, ge=1, le=64)
    # Finished backtests stay in the store, readable from any replica, this long.
    keep_finished_hours: float = Field(24.0, gt=0, le=24 * 365)


class BackfillSettings(_Section):
    # Backfills running at once, counted over every replica sharing the store; more are
    # refused (429). Each has its own consumer outside the group and its own records in hand.
    max_running: int = Field(2, ge=1, le=64)
    # A replica holding a backfill renews its lease every third of this; when it dies,
    # another takes the backfill over once the lease has expired (plus a claim poll, 1 s).
    lease_seconds: float = Field(15.0, ge=3, le=300)
    # A backfill's records in hand (as pipeline.max_in_flight): bounds its calls in flight,
    # and so its share of the orchestration API beside the live pipeline.
    max_in_flight: int = Field(256, ge=1, le=100_000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    backfill: BackfillSettings = Field(default_factory=BackfillSettings)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    # Raw here; validated by load_yaml_triggers so messages can name the trigger.
    triggers: list[Any] = Field(default_factory=list)
    triggers_files: list[str] = Field(default_factory=list)
    # How often the config file and trigger files are checked for changes (SIGHUP: at once).
    triggers_poll_interval_seconds: float = Field(1.0, gt=0, le=3600)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (the file arrives as init kwargs).
        return (env_settings, init_settings)


class LoadedConfig(BaseModel):
    """Settings plus where they came from, which relative trigger-file globs need."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Settings
    path: Path | None


def resolve_config_path(path: str | None) -> Path | None:
    chosen = path or os.environ.get(CONFIG_PATH_ENV)
    return Path(chosen) if chosen else None


def load_config(path: Path | None) -> LoadedConfig:
    """Read the YAML file (if any) and the environment; raise ConfigError naming every problem."""
    data = _read_yaml_mapping(path) if path is not None else {}
    unknown = unknown_variables()
    if unknown:
        raise ConfigError("\n".join(unknown))
    try:
        settings = Settings(**data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except SettingsError as exc:
        # pydantic-settings could not decode a JSON-valued environment variable.
        culprits = _undecodable_variables()
        if not culprits:
            raise ConfigError(f"environment: {exc} (complex values are JSON)") from None
        raise ConfigError(
            "\n".join(
                f"environment {name}: not valid JSON (lists and mappings are written as JSON, "
                'e.g. ["a", "b"] or [{"key": "value"}])'
                for name in culprits
            )
        ) from None
    return LoadedConfig(settings=settings, path=path)


# libyaml's loader when PyYAML was built with it (its wheels are): the pure-Python one took
# 3-5 s to read a file of 10,000 triggers.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_YAML_LOADER)  # a safe loader: plain data only


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of sections")
    return data


def _describe(exc: pydantic.ValidationError, path: Path | None) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        what = "unknown setting" if error["type"] == "extra_forbidden" else _plain(error)
        lines.append(f"{_origin(error['loc'], path)}: {key}: {what}")
    return "\n".join(lines)


def _origin(loc: tuple[int | str, ...], path: Path | None) -> str:
    """Where a value came from: its environment variable, or the variables under it (a
    section's own check reads several keys), or else the file."""
    for end in range(len(loc), 0, -1):  # the value's own variable, or one holding it whole
        holder = ENV_PREFIX + "__".join(str(part) for part in loc[:end]).upper()
        if holder in os.environ:
            return f"environment {holder}"
    name = ENV_PREFIX + "__".join(str(part) for part in loc).upper()
    under = sorted(v for v in os.environ if v.startswith(name + "__"))
    if under:
        return f"environment {', '.join(under)}" + (f" (with {path})" if path else "")
    return str(path or "config")


def _plain(error: Any) -> str:
    """pydantic's message, without its "Value error, " prefix, with lengths counted in the
    unit a reader expects."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in ("too_short", "too_long") and isinstance(
        error.get("input"), str | SecretStr
    ):
        message = message.replace(" items", " characters").replace(" item", " character")
        message = message.replace("Value should have", "It should have")
        message = message.replace(" after validation", "")
    return message


def unknown_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """A line for each TRIGGER_DAEMON_SECTION__KEY variable that names no setting, with the
    nearest one that does (pydantic-settings would ignore it silently)."""
    known = set(_setting_annotations(Settings))
    problems = []
    for name in sorted(environ):
        # Setting variables nest with "__"; other TRIGGER_DAEMON_* names may be a deployment's
        # own (a token_env such as TRIGGER_DAEMON_API_TOKEN), so they are left alone.
        if not name.startswith(ENV_PREFIX) or "__" not in name or name in known:
            continue
        if any(name.startswith(var + "__") for var in known):
            continue  # a key inside a dict-valued setting
        nearest = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        problems.append(f"environment {name}: unknown setting{hint}")
    return problems


def _undecodable_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The setting variables of list or mapping settings whose value is not JSON."""
    undecodable = []
    for name, annotation in _setting_annotations(Settings).items():
        value = environ.get(name)
        if value is None or get_origin(annotation) not in (list, dict):
            continue
        try:
            json.loads(value)
        except ValueError:
            undecodable.append(name)
    return sorted(undecodable)


def _setting_annotations(model: type[BaseModel], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for field_name, field in model.model_fields.items():
        name = prefix + field_name.upper()
        annotation = field.annotation
        found[name] = annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= _setting_annotations(annotation, name + "__")
    return found


def yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem
