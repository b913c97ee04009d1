"""The daemons read their config file in a short-lived child process.

PyYAML, voluptuous and the schema take about 3.5 MB of memory that a process keeps
for its whole life once it has imported them, and a daemon needs them once, at
start-up (on a Raspberry Pi beside Home Assistant and the broker, that is a tenth
of the agent). So `farm-agent run` and `farm-agent work` fork before anything else
starts: the child reads and validates the file and sends back the settled document
as JSON through a pipe (never argv or the environment: it holds the passwords); the
daemon builds its frozen config from it and never imports the schema's libraries.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from farm_agent.config import AgentConfig, ConfigError, config_from_document


def read_config(path: str | os.PathLike[str] | None) -> AgentConfig:
    """The config at `path`, read in a child process; a ConfigError as in-process loading."""
    if not hasattr(os, "fork"):
        from farm_agent.config_file import load_config  # noqa: PLC0415 - no fork here

        return load_config(path)
    # What is buffered now would be written twice: once by each process.
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        _answer(path, write_end)  # never returns
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    return _config_from(answer, _exit_code(child))


def _exit_code(child: int) -> int | None:
    """The child's exit code (minus the signal that killed it), or None if unknowable."""
    try:
        _, status = os.waitpid(child, 0)
    except ChildProcessError:
        # SIGCHLD ignored (inherited from a launcher): the kernel reaped the child itself.
        return None
    return os.waitstatus_to_exitcode(status)


def _answer(path: str | os.PathLike[str] | None, write_end: int) -> None:
    """In the child: the settled document or the config error, as one JSON object; then exit."""
    code = 0
    try:
        from farm_agent.config_file import read_document  # noqa: PLC0415 - the child's alone

        try:
            answer = json.dumps({"document": read_document(path)}, default=_as_text)
        except ConfigError as err:
            answer = json.dumps({"error": str(err)})
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(answer.encode())
    except BaseException:  # a bug: shown here, and the parent refuses to start
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        # No atexit handlers, no buffers of the parent's flushed a second time.
        os._exit(code)


def _as_text(value: object) -> str:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"a config value of type {type(value).__name__} cannot be sent")


def _config_from(answer: bytes, exit_code: int | None) -> AgentConfig:
    try:
        reply = json.loads(answer) if answer else {}
    except ValueError:
        reply = {}
    if "error" in reply:
        raise ConfigError(reply["error"])
    if exit_code not in (0, None) or "document" not in reply:
        how = _how(exit_code)
        raise ConfigReaderError(f"reading the config failed in its child process: {how}")
    return config_from_document(reply["document"])


def _how(exit_code: int | None) -> str:
    if exit_code is not None and exit_code < 0:
        # No traceback: e.g. the kernel's OOM killer on a host short of memory.
        try:
            return f"it was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"it was killed by signal {-exit_code}"
    return "the traceback above says where"


class ConfigReaderError(RuntimeError):
    """The child process reading the config died without an answer: a bug, not bad input."""
