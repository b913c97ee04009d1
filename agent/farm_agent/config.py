"""The agent's configuration as frozen dataclasses, and the names and limits it shares.

Reading a file (YAML, `${ENV}`, the schema) is `farm_agent.config_file`'s job: the
daemons never import it (see `farm_agent.config_reader`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

AGENT_ID_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
# PGMQ builds table names q_<name>/a_<name> and caps names at 47 characters.
QUEUE_NAME_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,46}")
TASK_TYPE_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}")
TASK_PRIORITIES = ("high", "normal", "low")
# The handlers every worker has unless the config maps their type to null.
BUILTIN_HANDLERS = {
    "sensor_reading": "farm_agent.tasks.builtin:store_readings",
    "send_notification": "farm_agent.tasks.builtin:notify_mqtt",
    "canary": "farm_agent.tasks.builtin:canary",
}
# The service level objectives the agent measures, with the spec's targets (docs/contracts.md).
SLO_OBJECTIVES = {
    "database_availability": 99.9,
    "api_availability": 99.9,
    "error_rate": 99.0,
    "task_success": 99.5,
    "task_latency": 99.0,
}
SECRET_KEYS = frozenset({"password", "pooler_dsn", "direct_dsn", "pooler_admin_dsn", "token"})
# libpq's sslmode values, weakest first; `allow` and `prefer` fall back to plaintext.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The spool recognises broker redeliveries by packet id among its last 2 x receive_maximum
# deliveries; that memory must stay well inside the 65,535 packet ids a broker cycles
# through, or a new reading reusing an old packet id could be taken for a redelivery.
MAX_RECEIVE_MAXIMUM = 10_000
_D = TypeVar("_D")


class ConfigError(ValueError):
    """A configuration problem, phrased for the operator: names the key, never the secret."""


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: str | None
    cert_file: str | None
    key_file: str | None


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: TlsConfig | None
    client_id: str
    topics: tuple[str, ...]
    qos: int
    topic_prefix: str
    discovery_prefix: str | None
    max_payload_bytes: int
    keepalive_s: int
    session_expiry_s: int
    receive_maximum: int


@dataclass(frozen=True, slots=True)
class BackendTlsConfig:
    """How database connections are encrypted and verified; see farm_agent.database."""

    ca_file: str | None
    mode: str | None


@dataclass(frozen=True, slots=True)
class BackendConfig:
    pooler_dsn: str | None
    direct_dsn: str | None
    tls: BackendTlsConfig
    queue: str
    dead_letter_queue: str
    batch_size: int
    batch_interval_ms: int
    connect_timeout_s: float
    statement_timeout_s: float
    failover_after: int
    failback_interval_s: float
    failback_after: int
    ledger_retention_days: float
    batch_max_bytes: int
    # PgBouncer's admin console (database `pgbouncer`), for pool utilisation; a secret.
    pooler_admin_dsn: str | None
    # None: decided by the hosts (farm_agent.schema.manages_schema).
    manage_schema: bool | None


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    path: Path
    max_messages: int


@dataclass(frozen=True, slots=True)
class InvalidateConfig:
    """A write that must invalidate an HTTP probe's cached answer (the cache-invalidation check)."""

    method: str
    url: str
    # Sent as JSON (text as it is); `{nonce}` in it becomes a fresh value for every write.
    body: Any


@dataclass(frozen=True, slots=True)
class HttpProbeConfig:
    name: str
    url: str
    expect_status: int
    expect_cache: bool
    timeout_s: float
    latency_ms: float | None = None
    invalidate: InvalidateConfig | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    query_ms: float
    queue_depth: int
    dlq_depth: int
    processing_s: float
    task_success: float
    cache_hit_ratio: float
    cached_ms: float


@dataclass(frozen=True, slots=True)
class ProbesConfig:
    interval_s: float
    timeout_s: float
    thresholds: Thresholds
    http: tuple[HttpProbeConfig, ...]


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class TaskSource:
    """An extra queue the worker consumes: each relay envelope in it is a task of `type`."""

    queue: str
    type: str


@dataclass(frozen=True, slots=True)
class TasksConfig:
    """The `tasks:` section: the task queues, the handlers and how the worker runs them."""

    queue: str
    dead_letter_queue: str
    handlers: dict[str, str]
    max_attempts: int
    visibility_timeout_s: int
    backoff_base_s: float
    backoff_max_s: float
    concurrency: int
    timeouts: dict[str, float]
    default_timeout_s: float
    max_wait_s: float
    sources: tuple[TaskSource, ...]
    poll_interval_s: float
    heartbeat_s: float
    drain_s: float
    listen: HttpConfig | None
    figures_retention_days: float

    def queue_for(self, priority: str) -> str:
        """The PGMQ queue of a priority: `<queue>_high`, `_normal` or `_low`."""
        return f"{self.queue}_{priority}"

    @property
    def priority_queues(self) -> tuple[str, ...]:
        return tuple(self.queue_for(priority) for priority in TASK_PRIORITIES)

    def timeout_for(self, task_type: str) -> float:
        return self.timeouts.get(task_type, self.default_timeout_s)


@dataclass(frozen=True, slots=True)
class ObjectiveConfig:
    """One service level objective: which (`SLO_OBJECTIVES`) and its target, in %."""

    name: str
    target_pct: float


@dataclass(frozen=True, slots=True)
class SloConfig:
    """The `slo:` section: the objectives, their window, and where the history is kept."""

    window_days: int
    objectives: tuple[ObjectiveConfig, ...]
    history_path: Path


@dataclass(frozen=True, slots=True)
class HomeAssistantConfig:
    """Where `farm-agent check` finds Home Assistant; `url` None: not checked."""

    url: str | None
    token: str | None
    # The hub's entity that exists while the Farm Resilience hub is loaded.
    hub_entity: str


@dataclass(frozen=True, slots=True)
class AgentConfig:
    agent_id: str
    mqtt: MqttConfig
    backend: BackendConfig
    spool: SpoolConfig
    probes: ProbesConfig
    http: HttpConfig | None
    log_level: str
    tasks: TasksConfig
    slo: SloConfig
    home_assistant: HomeAssistantConfig


def config_from_document(document: Mapping[str, Any]) -> AgentConfig:
    """The frozen config from a validated, settled document (`config_file.settled_document`)."""
    return _build(AgentConfig, document)


def _build(cls: type[_D], values: Mapping[str, Any]) -> _D:
    """A config dataclass from a section: each field from the key of its name, nested alike.

    A field typed as a dataclass (or a tuple of them) is built from its mapping (or
    list of mappings); a tuple field takes the list as a tuple; the rest as it is.
    """
    names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    extra = set(values) - names
    assert not extra, f"{cls.__name__} has no field for {sorted(extra)}"
    hints = typing.get_type_hints(cls)
    return cls(**{name: _field_value(hints[name], values[name]) for name in names})


def _field_value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)]
    if isinstance(hint, types.UnionType) and len(kinds) == 1:
        hint = kinds[0]  # X | None
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return _build(hint, value)  # type: ignore[arg-type]
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_field_value(item, each) for each in value)
    if typing.get_origin(hint) is dict:
        return dict(value)
    if hint is Path:
        return Path(value)  # a document that travelled as JSON has it as text
    return value
