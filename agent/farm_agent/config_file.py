"""Reading a config file: YAML, `${ENV}` substitution, one schema, errors that name the key."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import voluptuous as vol
import yaml

from farm_agent.config import (
    AGENT_ID_PATTERN,
    BUILTIN_HANDLERS,
    MAX_RECEIVE_MAXIMUM,
    QUEUE_NAME_PATTERN,
    SECRET_KEYS,
    SLO_OBJECTIVES,
    SSL_MODES,
    TASK_PRIORITIES,
    TASK_TYPE_PATTERN,
    AgentConfig,
    ConfigError,
    config_from_document,
)
from farm_agent.topics import filters_overlap, not_reading_filters, subscription_filter

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOTTED_NAME = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"
HANDLER_PATH_PATTERN = re.compile(f"{_DOTTED_NAME}:{_DOTTED_NAME}")


def _agent_id(value: Any) -> str:
    if not isinstance(value, str) or not AGENT_ID_PATTERN.fullmatch(value):
        raise vol.Invalid("must be 1-64 characters of a-z, 0-9, '_' or '-'")
    return value


def _queue_name(value: Any) -> str:
    if not isinstance(value, str) or not QUEUE_NAME_PATTERN.fullmatch(value):
        raise vol.Invalid(
            "must be 1-47 characters of a-z, 0-9 and '_', starting with a letter or '_'"
            " (PGMQ turns it into table names)"
        )
    return value


def _dsn(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise vol.Invalid("expected a postgresql:// connection string")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as err:
        raise vol.Invalid("is not a valid postgresql:// connection string (bad port?)") from err
    if parts.scheme not in ("postgres", "postgresql"):
        raise vol.Invalid("must start with postgresql:// (or postgres://)")
    if not parts.hostname:
        raise vol.Invalid("has no host")
    if port == 0:
        raise vol.Invalid("has port 0")
    sslmode = parse_qs(parts.query).get("sslmode", [None])[-1]
    if sslmode is not None and sslmode not in SSL_MODES:
        raise vol.Invalid(f"has sslmode={sslmode}; it must be one of {', '.join(SSL_MODES)}")
    return value


def _mqtt_topic_filter(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected a non-empty MQTT topic filter")
    filter_part = value
    if value.startswith("$share/"):
        pieces = value.split("/", 2)
        if len(pieces) != 3 or not pieces[1] or not pieces[2]:
            raise vol.Invalid("a shared subscription is $share/<group>/<filter>")
        filter_part = pieces[2]
    levels = filter_part.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise vol.Invalid("'#' must be a whole last level of the topic filter")
        if "+" in level and level != "+":
            raise vol.Invalid("'+' must be a whole level of the topic filter")
    return value


def _topic_prefix(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected a non-empty MQTT topic")
    if any(character in value for character in "+#\0"):
        raise vol.Invalid("must be a plain topic: no '+', '#' or NUL")
    return value


def _optional_topic_prefix(value: Any) -> str | None:
    return None if value is None else _topic_prefix(value)


def _tls_mode(value: Any) -> str | None:
    if value is None:
        return None
    if value in SSL_MODES and value not in ("allow", "prefer"):
        return str(value)
    raise vol.Invalid(
        "must be disable, require, verify-ca or verify-full"
        " (allow and prefer would fall back to plaintext)"
    )


def _listen_address(value: Any) -> dict[str, Any]:
    """`host:port` as HttpConfig's fields."""
    if not isinstance(value, str) or ":" not in value:
        raise vol.Invalid("expected host:port, e.g. 127.0.0.1:9102")
    host, _, port_text = value.rpartition(":")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise vol.Invalid("port must be a number 0-65535")
    return {"host": host.strip("[]") or "127.0.0.1", "port": int(port_text)}


_PORT = vol.All(int, vol.Range(min=1, max=65535))
_POSITIVE_INT = vol.All(int, vol.Range(min=1))
_POSITIVE_NUMBER = vol.All(vol.Coerce(float), vol.Range(min=0.001))
_OPTIONAL_STR = vol.Any(None, str)

TLS_SCHEMA = vol.Schema(
    {
        vol.Optional("ca_file", default=None): _OPTIONAL_STR,
        vol.Optional("cert_file", default=None): _OPTIONAL_STR,
        vol.Optional("key_file", default=None): _OPTIONAL_STR,
    }
)

MQTT_SCHEMA = vol.Schema(
    {
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=1883): _PORT,
        vol.Optional("username", default=None): _OPTIONAL_STR,
        vol.Exclusive("password", "password"): _OPTIONAL_STR,
        vol.Exclusive("password_file", "password"): _OPTIONAL_STR,
        vol.Optional("tls", default=None): vol.Any(None, TLS_SCHEMA),
        vol.Optional("client_id", default=None): vol.Any(None, vol.All(str, vol.Length(1, 128))),
        vol.Optional("topics", default=["farm/#"]): vol.All(
            [_mqtt_topic_filter], vol.Length(min=1, msg="needs at least one topic filter")
        ),
        vol.Optional("qos", default=1): vol.In(
            [0, 1],
            msg="must be 0 or 1; QoS 2 is refused: QoS 1 with the spool and the queue's "
            "high-water marks is already exactly once, and paho's QoS 2 loses readings on a crash",
        ),
        vol.Optional("topic_prefix", default="farm_resilience"): _topic_prefix,
        vol.Optional("discovery_prefix", default="homeassistant"): _optional_topic_prefix,
        vol.Optional("max_payload_bytes", default=262144): _POSITIVE_INT,
        vol.Optional("keepalive_s", default=30): vol.All(int, vol.Range(min=5, max=3600)),
        vol.Optional("session_expiry_s", default=7 * 24 * 3600): vol.All(
            int, vol.Range(min=60, max=0xFFFFFFFF)
        ),
        vol.Optional("receive_maximum", default=1000): vol.All(
            int,
            vol.Range(
                min=1,
                max=MAX_RECEIVE_MAXIMUM,
                msg=f"must be 1-{MAX_RECEIVE_MAXIMUM}: redeliveries are recognised among the "
                "last 2 x receive_maximum deliveries, which must stay well inside the 65,535 "
                "MQTT packet ids",
            ),
        ),
    }
)

BACKEND_TLS_SCHEMA = vol.Schema(
    {
        vol.Optional("ca_file", default=None): _OPTIONAL_STR,
        vol.Optional("mode", default=None): _tls_mode,
    }
)

BACKEND_SCHEMA = vol.Schema(
    {
        vol.Optional("pooler_dsn", default=None): _dsn,
        vol.Optional("direct_dsn", default=None): _dsn,
        vol.Optional("tls", default={}): vol.Any(None, BACKEND_TLS_SCHEMA),
        vol.Optional("queue", default="sensor_readings"): _queue_name,
        vol.Optional("dead_letter_queue", default="sensor_readings_dlq"): _queue_name,
        vol.Optional("batch_size", default=500): vol.All(int, vol.Range(min=1, max=10000)),
        vol.Optional("batch_interval_ms", default=200): vol.All(int, vol.Range(min=0, max=60000)),
        vol.Optional("connect_timeout_s", default=5.0): _POSITIVE_NUMBER,
        vol.Optional("statement_timeout_s", default=15.0): _POSITIVE_NUMBER,
        vol.Optional("failover_after", default=3): _POSITIVE_INT,
        vol.Optional("failback_interval_s", default=10.0): _POSITIVE_NUMBER,
        vol.Optional("failback_after", default=3): _POSITIVE_INT,
        vol.Optional("ledger_retention_days", default=7.0): _POSITIVE_NUMBER,
        vol.Optional("batch_max_bytes", default=512 * 1024): vol.All(int, vol.Range(min=1024)),
        vol.Optional("pooler_admin_dsn", default=None): _dsn,
        vol.Optional("manage_schema", default=None): vol.Any(None, bool),
    }
)

SPOOL_SCHEMA = vol.Schema(
    {
        vol.Optional("path", default="./farm-agent-spool.db"): vol.All(str, vol.Length(min=1)),
        vol.Optional("max_messages", default=1_000_000): _POSITIVE_INT,
    }
)

THRESHOLDS_SCHEMA = vol.Schema(
    {
        vol.Optional("query_ms", default=100.0): _POSITIVE_NUMBER,
        vol.Optional("queue_depth", default=100): vol.All(int, vol.Range(min=0)),
        vol.Optional("dlq_depth", default=0): vol.All(int, vol.Range(min=0)),
        vol.Optional("processing_s", default=30.0): _POSITIVE_NUMBER,
        vol.Optional("task_success", default=99.5): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=100)
        ),
        vol.Optional("cache_hit_ratio", default=0.9): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=1)
        ),
        vol.Optional("cached_ms", default=100.0): _POSITIVE_NUMBER,
    }
)

_HTTP_URL = vol.All(str, vol.Match(r"^https?://", msg="must be an http(s):// URL"))


def _json_body(value: Any) -> Any:
    """Text, or what JSON can carry: a YAML date or a NaN would only fail at the first write."""
    if value is None or isinstance(value, str):
        return value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise vol.Invalid(
            "must be text or JSON: mappings, lists, text, numbers, true, false, null"
        ) from err
    return value


INVALIDATE_SCHEMA = vol.Schema(
    {
        vol.Required("method"): vol.All(
            str, vol.Upper, vol.In(["POST", "PUT", "PATCH"], msg="must be POST, PUT or PATCH")
        ),
        vol.Required("url"): _HTTP_URL,
        vol.Optional("body", default=None): _json_body,
    }
)

HTTP_PROBE_SCHEMA = vol.Schema(
    {
        vol.Required("name"): vol.All(str, vol.Match(r"^[A-Za-z0-9_.-]{1,64}$")),
        vol.Required("url"): _HTTP_URL,
        vol.Optional("expect_status", default=200): vol.All(int, vol.Range(min=100, max=599)),
        vol.Optional("expect_cache", default=False): bool,
        vol.Optional("timeout_s", default=5.0): _POSITIVE_NUMBER,
        vol.Optional("latency_ms", default=None): vol.Any(None, _POSITIVE_NUMBER),
        vol.Optional("invalidate", default=None): vol.Any(None, INVALIDATE_SCHEMA),
    }
)

PROBES_SCHEMA = vol.Schema(
    {
        vol.Optional("interval_s", default=30.0): _POSITIVE_NUMBER,
        vol.Optional("timeout_s", default=10.0): _POSITIVE_NUMBER,
        vol.Optional("thresholds", default={}): THRESHOLDS_SCHEMA,
        vol.Optional("http", default=[]): [HTTP_PROBE_SCHEMA],
    }
)

HTTP_SCHEMA = vol.Schema({vol.Optional("listen", default="127.0.0.1:9102"): _listen_address})


def _task_type(value: Any) -> str:
    if not isinstance(value, str) or not TASK_TYPE_PATTERN.fullmatch(value):
        raise vol.Invalid("a task type is 1-64 characters of a-z, 0-9, '_', '.' or '-'")
    return value


def _task_queue_name(value: Any) -> str:
    name = _queue_name(value)
    if len(name) > 40:
        raise vol.Invalid("must be at most 40 characters (PGMQ queues <name>_normal etc.)")
    return name


def _handler_path(value: Any) -> str | None:
    if value is not None and (
        not isinstance(value, str) or not HANDLER_PATH_PATTERN.fullmatch(value)
    ):
        raise vol.Invalid("expected package.module:function (or null for no handler)")
    return value


TASKS_SCHEMA = vol.Schema(
    {
        vol.Optional("queue", default="farm_tasks"): _task_queue_name,
        vol.Optional("dead_letter_queue", default=None): vol.Any(None, _queue_name),
        vol.Optional("handlers", default={}): {_task_type: _handler_path},
        vol.Optional("max_attempts", default=5): vol.All(int, vol.Range(min=1, max=1000)),
        vol.Optional("visibility_timeout_s", default=30): vol.All(int, vol.Range(min=1)),
        vol.Optional("backoff", default={}): {
            vol.Optional("base_s", default=2.0): _POSITIVE_NUMBER,
            vol.Optional("max_s", default=300.0): _POSITIVE_NUMBER,
        },
        vol.Optional("concurrency", default=4): vol.All(int, vol.Range(min=1, max=1000)),
        vol.Optional("timeouts", default={}): {_task_type: _POSITIVE_NUMBER},
        vol.Optional("max_wait_s", default=60.0): _POSITIVE_NUMBER,
        vol.Optional("sources", default=[]): [
            {vol.Required("queue"): _queue_name, vol.Required("type"): _task_type}
        ],
        vol.Optional("poll_interval_s", default=1.0): _POSITIVE_NUMBER,
        vol.Optional("heartbeat_s", default=10.0): _POSITIVE_NUMBER,
        vol.Optional("drain_s", default=30.0): _POSITIVE_NUMBER,
        vol.Optional("listen", default="127.0.0.1:9103"): vol.Any(None, _listen_address),
        vol.Optional("figures_retention_days", default=35.0): _POSITIVE_NUMBER,
    }
)


def _objective_name(value: Any) -> str:
    if value not in SLO_OBJECTIVES:
        raise vol.Invalid(f"unknown objective; the objectives are {', '.join(SLO_OBJECTIVES)}")
    return str(value)


OBJECTIVE_SCHEMA = vol.Schema(
    {
        vol.Required("name"): _objective_name,
        # Without it, the spec's target for that objective (SLO_OBJECTIVES).
        vol.Optional("target_pct"): vol.All(
            vol.Coerce(float),
            vol.Range(
                min=0,
                max=100,
                min_included=False,
                max_included=False,
                msg="must be above 0 and below 100 (a target of 100 % leaves no error budget)",
            ),
        ),
    }
)

HOME_ASSISTANT_SCHEMA = vol.Schema(
    {
        vol.Optional("url", default=None): vol.Any(None, _HTTP_URL),
        vol.Optional("token", default=None): _OPTIONAL_STR,
        vol.Optional("hub_entity", default="binary_sensor.farm_resilience_degraded"): vol.Match(
            r"^[a-z_]+\.[a-z0-9_]+$", msg="must be an entity id such as binary_sensor.x"
        ),
    }
)

SLO_SCHEMA = vol.Schema(
    {
        vol.Optional("window_days", default=30): vol.All(int, vol.Range(min=1, max=90)),
        # None: the spec's objectives; a list replaces them.
        vol.Optional("objectives", default=None): vol.Any(None, [OBJECTIVE_SCHEMA]),
        vol.Optional("history_path", default=None): vol.Any(None, vol.All(str, vol.Length(min=1))),
    }
)

CONFIG_SCHEMA = vol.Schema(
    {
        vol.Required("agent_id"): _agent_id,
        vol.Optional("mqtt", default={}): MQTT_SCHEMA,
        vol.Required("backend"): BACKEND_SCHEMA,
        vol.Optional("spool", default={}): SPOOL_SCHEMA,
        vol.Optional("probes", default={}): PROBES_SCHEMA,
        vol.Optional("http", default={}): vol.Any(None, HTTP_SCHEMA),
        vol.Optional("tasks", default={}): TASKS_SCHEMA,
        vol.Optional("slo", default={}): SLO_SCHEMA,
        vol.Optional("home_assistant", default={}): HOME_ASSISTANT_SCHEMA,
        vol.Optional("log_level", default="info"): vol.All(
            str, vol.Lower, vol.In(["debug", "info", "warning", "error"])
        ),
    }
)


def load_config(path: str | os.PathLike[str] | None) -> AgentConfig:
    """Read, substitute `${ENV}`, validate and freeze a config file."""
    return config_from_document(read_document(path))


def parse_config(raw: Any, base_dir: Path | None = None) -> AgentConfig:
    """Validate a YAML document already loaded; relative files resolve against `base_dir`."""
    return config_from_document(settled_document(raw, base_dir))


def read_document(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """A config file read, validated and settled: plain data, as `config_from_document` takes."""
    if path is None or str(path) == "":
        raise ConfigError("no config file: pass --config PATH or set FARM_AGENT_CONFIG")
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"{config_path}: file not found") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{config_path}: cannot read ({err.__class__.__name__})") from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{config_path}:{line} is not valid YAML") from err
    return settled_document(raw, base_dir=config_path.parent)


def settled_document(raw: Any, base_dir: Path | None = None) -> dict[str, Any]:
    """A loaded YAML document validated and settled; relative files resolve against `base_dir`."""
    if not isinstance(raw, dict):
        raise ConfigError(
            "the config file must be a mapping of keys (agent_id, mqtt, backend, ...)"
        )
    substituted = _substitute_env(raw, ())
    try:
        valid: dict[str, Any] = CONFIG_SCHEMA(substituted)
    except vol.MultipleInvalid as err:
        raise ConfigError(_describe(err.errors[0], substituted)) from None
    backend = valid["backend"]
    if backend["pooler_dsn"] is None and backend["direct_dsn"] is None:
        raise ConfigError("backend: set pooler_dsn, direct_dsn or both")
    if backend["pooler_admin_dsn"] is not None and backend["pooler_dsn"] is None:
        raise ConfigError(
            "backend.pooler_admin_dsn: needs backend.pooler_dsn (whose pool it shows)"
        )
    if backend["queue"] == backend["dead_letter_queue"]:
        raise ConfigError("backend.dead_letter_queue: must differ from backend.queue")
    _refuse_overlapping_topics(valid["mqtt"])
    home_assistant = valid["home_assistant"]
    if home_assistant["url"] is not None and not home_assistant["token"]:
        raise ConfigError("home_assistant.token: required with home_assistant.url")
    return _settled(valid, base_dir or Path.cwd())


def _refuse_overlapping_topics(mqtt: dict[str, Any]) -> None:
    """Readings must not share topics with what the agent takes for itself and never relays."""
    reserved = not_reading_filters(mqtt["topic_prefix"], mqtt["discovery_prefix"])
    for index, subscription in enumerate(mqtt["topics"]):
        for key, own in reserved.items():
            if filters_overlap(subscription_filter(subscription), own):
                prefix = mqtt[key.removeprefix("mqtt.")]
                raise ConfigError(
                    f"mqtt.topics.{index}: {subscription!r} overlaps {key} {prefix!r}: messages"
                    f" on {own} are the agent's own and never relayed; choose topic filters"
                    f" outside it, or another {key}"
                )


def _substitute_env(node: Any, path: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        return {key: _substitute_env(value, (*path, str(key))) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute_env(value, (*path, str(index))) for index, value in enumerate(node)]
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{'.'.join(path)}: environment variable {name} is not set")
            return os.environ[name]

        return ENV_REFERENCE.sub(replace, node)
    return node


def _describe(error: vol.Invalid, raw: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error.path) or "(top level)"
    message = error.error_message or str(error)
    if message == "extra keys not allowed":
        return f"{key}: unknown key"
    if message == "required key not provided":
        return f"{key}: required key is missing"
    if message.startswith("two or more values in the same group of exclusion"):
        parent = ".".join(str(part) for part in error.path[:-1])
        return f"{parent}.password: set only one of password and password_file"
    if error.path and str(error.path[-1]) in SECRET_KEYS:
        # Never echo a secret back, even when it is malformed.
        return f"{key}: {message}"
    value = _value_at(raw, error.path)
    shown = f" (got {value!r})" if value is not None and not isinstance(value, dict | list) else ""
    return f"{key}: {message}{shown}"


def _value_at(raw: Any, path: list[Any]) -> Any:
    node = raw
    for part in path:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        else:
            return None
    return node


def _read_password_file(path: str, base_dir: Path) -> str:
    file_path = _resolved(path, base_dir)
    try:
        return file_path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as err:
        raise ConfigError(f"mqtt.password_file: cannot read {file_path} ({err.strerror})") from err


def _settled(valid: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The validated document shaped like AgentConfig: only the keys not taken as they are.

    `mqtt.password_file` becomes `mqtt.password`; the client id and the task
    dead-letter queue get their defaults from other keys; files resolve against the
    config's folder; `http.listen` and `tasks.backoff` flatten into their dataclasses;
    the built-in task handlers join the configured ones; the objectives get their targets
    and the SLO history its file beside the spool.
    """
    mqtt = dict(valid["mqtt"])
    password_file = mqtt.pop("password_file", None)
    mqtt["password"] = (
        _read_password_file(password_file, base_dir) if password_file else mqtt.get("password")
    )
    mqtt["client_id"] = mqtt["client_id"] or f"farm-agent-{valid['agent_id']}"
    backend = {**valid["backend"], "tls": _backend_tls(valid["backend"]["tls"], base_dir)}
    spool = {**valid["spool"], "path": _resolved(valid["spool"]["path"], base_dir)}
    http = valid["http"]
    processing_s = valid["probes"]["thresholds"]["processing_s"]
    return {
        **valid,
        "mqtt": mqtt,
        "backend": backend,
        "spool": spool,
        "http": http["listen"] if http is not None else None,
        "tasks": _settled_tasks(valid["tasks"], processing_s),
        "slo": _settled_slo(valid["slo"], spool["path"], base_dir),
    }


def _resolved(path: str, base_dir: Path) -> Path:
    """A file named in the config: relative to the config file's folder."""
    return Path(path) if Path(path).is_absolute() else base_dir / path


def _check_task_queues(tasks: dict[str, Any]) -> None:
    """Every task queue, the dead-letter queue and each source are distinct queues."""
    own = [f"{tasks['queue']}_{priority}" for priority in TASK_PRIORITIES]
    if tasks["dead_letter_queue"] in own:
        raise ConfigError("tasks.dead_letter_queue: must differ from the task queues")
    taken = {*own, tasks["dead_letter_queue"] or f"{tasks['queue']}_dlq"}
    for index, source in enumerate(tasks["sources"]):
        if source["queue"] in taken:
            raise ConfigError(f"tasks.sources.{index}.queue: is already a task queue")
        taken.add(source["queue"])


def _settled_tasks(tasks: dict[str, Any], processing_s: float) -> dict[str, Any]:
    _check_task_queues(tasks)
    handlers = {**BUILTIN_HANDLERS, **tasks["handlers"]}
    settled = {
        **tasks,
        "dead_letter_queue": tasks["dead_letter_queue"] or f"{tasks['queue']}_dlq",
        "handlers": {task_type: path for task_type, path in handlers.items() if path is not None},
        "backoff_base_s": tasks["backoff"]["base_s"],
        "backoff_max_s": tasks["backoff"]["max_s"],
        "default_timeout_s": processing_s,
    }
    del settled["backoff"]
    return settled


def _settled_slo(slo: dict[str, Any], spool_path: Path, base_dir: Path) -> dict[str, Any]:
    """The objectives with their targets filled in; the history file beside the spool."""
    listed = slo["objectives"]
    if listed is None:
        listed = [{"name": name} for name in SLO_OBJECTIVES]
    seen: set[str] = set()
    for index, objective in enumerate(listed):
        if objective["name"] in seen:
            raise ConfigError(f"slo.objectives.{index}.name: {objective['name']} is listed twice")
        seen.add(objective["name"])
    history = slo["history_path"]
    return {
        "window_days": slo["window_days"],
        "objectives": [
            {
                "name": each["name"],
                "target_pct": each.get("target_pct", SLO_OBJECTIVES[each["name"]]),
            }
            for each in listed
        ],
        "history_path": (
            _resolved(history, base_dir)
            if history is not None
            else spool_path.with_name(f"{spool_path.stem}-history.db")
        ),
    }


def _backend_tls(tls: dict[str, Any] | None, base_dir: Path) -> dict[str, Any]:
    """The backend's TLS settings, with `ca_file` resolved and readable."""
    ca_file = (tls or {}).get("ca_file")
    if ca_file is not None:
        path = _resolved(ca_file, base_dir)
        try:
            path.read_bytes()
        except OSError as err:
            raise ConfigError(f"backend.tls.ca_file: cannot read {path} ({err.strerror})") from err
        ca_file = str(path)
    return {"ca_file": ca_file, "mode": (tls or {}).get("mode")}
