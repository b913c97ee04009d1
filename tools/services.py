"""Throwaway real services on free loopback ports: PostgreSQL+PGMQ, PgBouncer, Mosquitto.

Used by the test fixtures, `make demo` and `make bench`. Each service keeps its
port and data across stop/kill/start, so a test can SIGKILL one and bring the
same one back. Everything lives in one temporary folder removed at `close()`.
PostgreSQL can serve TLS with a certificate from a throwaway CA (`make_certificates`).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

POSTGRES_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
PR_SET_CHILD_SUBREAPER = 36
MIGRATIONS = Path(__file__).resolve().parents[1] / "supabase" / "migrations"
# The login the demo (and the tests of least privilege) give the agent: a farm host's
# own login role, IN ROLE farm_agent, as docs/supabase.md sets one up.
AGENT_LOGIN = "farm_east"


class ServiceError(RuntimeError):
    """A throwaway service could not be started."""


def pgmq_sql() -> str:
    """The PGMQ install SQL shipped by the PyPI package `pgmq`.

    Found without importing the package: its client needs an orjson newer than the
    one Home Assistant pins, so the Makefile installs it without dependencies.
    """
    spec = importlib.util.find_spec("pgmq")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("the PyPI package 'pgmq' is not installed; run 'make venv'")
    return (Path(next(iter(spec.submodule_search_locations))) / "sql" / "pgmq.sql").read_text()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(
                f"process exited with {process.returncode} before listening on {port}"
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def _service_user() -> tuple[int, int] | None:
    """PostgreSQL and PgBouncer refuse to run as root: run them as `postgres` then."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as err:
        raise ServiceError("running as root needs a 'postgres' user to run PostgreSQL") from err
    return entry.pw_uid, entry.pw_gid


def _find_binary(name: str, extra_dirs: tuple[str, ...] = ()) -> str:
    for folder in extra_dirs:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise ServiceError(
            f"'{name}' not found; run 'make' as root to install it, or install it yourself"
        )
    return found


def _dynamic_security_plugin() -> Path:
    """Mosquitto's own access control plugin (Debian's mosquitto package ships it).

    Unlike an acl_file, it refuses a subscription in the SUBACK (Not authorized), as
    other brokers' ACLs do.
    """
    for folder in (Path("/usr/lib"), Path("/usr/local/lib")):
        found = sorted(folder.glob("**/mosquitto_dynamic_security.so"))
        if found:
            return found[0]
    raise ServiceError("mosquitto_dynamic_security.so not found; it comes with Mosquitto 2")


def _become_subreaper() -> None:
    """Adopt orphaned grandchildren, so they can be reaped instead of left as zombies.

    A killed postmaster orphans its backends; where PID 1 does not reap (containers,
    microVMs) they would stay behind as zombies named `postgres`.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def _reap_orphan(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return
        else:
            if done:
                return
        time.sleep(0.02)


@dataclass
class _Process:
    """A server process in its own process group, so a kill takes its children too."""

    argv: list[str]
    log_path: Path
    owner: tuple[int, int] | None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def spawn(self) -> subprocess.Popen[bytes]:
        log = self.log_path.open("ab")
        kwargs: dict[str, object] = {}
        if self.owner is not None:
            kwargs = {"user": self.owner[0], "group": self.owner[1], "extra_groups": []}
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kwargs,  # type: ignore[call-overload]
        )
        log.close()
        return self.process

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait()
        self._reap_group()

    def kill(self) -> None:
        if self.process is None:
            return
        # PostgreSQL backends call setsid(): they are not in the leader's group.
        orphans = _descendants(self.process.pid)
        self.signal_group(signal.SIGKILL)
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()
        self._reap_group()
        for pid in orphans:
            _reap_orphan(pid)

    def _reap_group(self) -> None:
        """Children may outlive their leader (postgres backends): make sure the group is gone."""
        assert self.process is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            os.killpg(self.process.pid, signal.SIGKILL)
            time.sleep(0.05)


class Certificates(NamedTuple):
    """A throwaway CA and a server certificate it signed, with the server's key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it, in `folder`."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=Farm Test CA", cwd=folder)  # fmt: skip
    _openssl("req", *key, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.cnf",
             cwd=folder)  # fmt: skip
    for path in folder.iterdir():
        path.chmod(0o644)  # servers that drop root read them as their own user
    return Certificates(folder / "ca.crt", folder / "server.crt", folder / "server.key")


class Postgres:
    """PostgreSQL 15 with the PGMQ SQL of the PyPI package `pgmq` installed.

    With `tls` it also serves TLS with that certificate (and still plaintext to
    clients that do not ask for TLS, as a default PostgreSQL does).
    """

    user = "postgres"
    database = "farm"

    def __init__(self, root: Path, tls: Certificates | None = None) -> None:
        self.owner = _service_user()
        self.data_dir = root / "pgdata"
        self.socket_dir = root / "pgsocket"
        self.port = free_port()
        bin_dir = POSTGRES_BIN_DIRS
        self._postgres = _find_binary("postgres", bin_dir)
        self._initdb = _find_binary("initdb", bin_dir)
        self._proc = _Process(
            [
                self._postgres,
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                # Throwaway data: skip fsync, but keep synchronous_commit so a
                # SIGKILLed server never forgets a transaction it reported committed.
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                *(self._tls_options(root / "pgtls", tls) if tls is not None else ()),
            ],
            root / "postgres.log",
            self.owner,
        )
        self._initialise(root)

    def _tls_options(self, folder: Path, tls: Certificates) -> list[str]:
        """Server options for TLS; the key is copied where only PostgreSQL's user reads it."""
        folder.mkdir()
        cert_file, key_file = folder / "server.crt", folder / "server.key"
        shutil.copyfile(tls.cert_file, cert_file)
        shutil.copyfile(tls.key_file, key_file)
        key_file.chmod(0o600)
        if self.owner:
            for path in (folder, cert_file, key_file):
                os.chown(path, *self.owner)
        return [
            "-c",
            "ssl=on",
            "-c",
            f"ssl_cert_file={cert_file}",
            "-c",
            f"ssl_key_file={key_file}",
        ]

    def _initialise(self, root: Path) -> None:
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir()
            if self.owner:
                os.chown(folder, *self.owner)
        log = root / "initdb.log"
        log.touch()
        if self.owner:
            os.chown(log, *self.owner)
        _Process(
            [
                self._initdb,
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            log,
            self.owner,
        ).spawn().wait()
        if not (self.data_dir / "PG_VERSION").exists():
            raise ServiceError(f"initdb failed, see {log}: {log.read_text()[-500:]}")
        self.start()
        self._psql("postgres", f"CREATE DATABASE {self.database}")
        self._psql(self.database, pgmq_sql())

    def create_database(self, name: str) -> str:
        """A new database with PGMQ installed (nothing else, as on a fresh Supabase); its DSN."""
        self._psql("postgres", f"CREATE DATABASE {name}")
        self._psql(name, pgmq_sql())
        return self.dsn_for(name)

    def run_sql(self, database: str, sql: str) -> None:
        """Run a script with psql as the owner, stopping at the first error."""
        self._psql(database, sql)

    def dsn_for(self, database: str, user: str | None = None) -> str:
        return f"postgresql://{user or self.user}@127.0.0.1:{self.port}/{database}"

    def _psql(self, database: str, sql: str) -> None:
        psql = _find_binary("psql", POSTGRES_BIN_DIRS)
        result = subprocess.run(
            [
                psql,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
            ],
            input=sql.encode(),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"psql failed: {result.stderr.decode()[-1000:]}")

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        if self._proc.running:
            return
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        process = self._proc.spawn()
        wait_for_port(self.port, 30, process)
        self._wait_accepting()

    def _wait_accepting(self) -> None:
        isready = _find_binary("pg_isready", POSTGRES_BIN_DIRS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [isready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise ServiceError("PostgreSQL did not accept connections within 30 s")

    @property
    def running(self) -> bool:
        return self._proc.running

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast shutdown": abort sessions, checkpoint, exit.
        if self._proc.running:
            self._proc.signal_group(signal.SIGINT)
        self._proc.stop()

    def kill(self) -> None:
        self._proc.kill()

    def restart(self) -> None:
        self.stop()
        self.start()


class PgBouncer:
    """PgBouncer in transaction mode: the local stand-in for Supavisor (port 6543).

    With a `password` it checks it (auth_type md5) instead of trusting every login.
    `limits` override pool settings (`default_pool_size`, `max_client_conn`,
    `query_wait_timeout`, ...), to provoke pool exhaustion. Its admin console
    (`admin_dsn`) lets the `postgres` user read `SHOW POOLS` (stats_users).
    """

    def __init__(
        self,
        root: Path,
        postgres: Postgres,
        password: str | None = None,
        name: str = "pgbouncer",
        limits: dict[str, int] | None = None,
    ) -> None:
        self.owner = _service_user()
        self.postgres = postgres
        self.port = free_port()
        folder = root / name
        folder.mkdir()
        userlist = folder / "userlist.txt"
        # Trusting PgBouncer still lets in only the users its auth_file lists.
        logins = [postgres.user] if password else [postgres.user, AGENT_LOGIN]
        userlist.write_text("".join(f'"{login}" "{password or ""}"\n' for login in logins))
        config = folder / "pgbouncer.ini"
        settings = {"max_client_conn": 500, "default_pool_size": 40, **(limits or {})}
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={postgres.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            f"auth_type = {'md5' if password else 'trust'}\n"
            f"auth_file = {userlist}\n"
            "pool_mode = transaction\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
            + f"stats_users = {postgres.user}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            "server_reset_query =\n"
            # After failed logins (the database was down) PgBouncer refuses clients for
            # this long; the default 15 s would leak one test's outage into the next.
            "server_login_retry = 1\n"
        )
        if self.owner:
            os.chown(folder, *self.owner)
            for path in folder.iterdir():
                os.chown(path, *self.owner)
        self._proc = _Process(
            [_find_binary("pgbouncer"), str(config)], root / f"{name}.log", self.owner
        )
        self.start()

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.postgres.user}@127.0.0.1:{self.port}/{self.postgres.database}"

    @property
    def admin_dsn(self) -> str:
        """The admin console (`SHOW POOLS`), as the `postgres` user."""
        return f"postgresql://{self.postgres.user}@127.0.0.1:{self.port}/pgbouncer"

    def dsn_for(self, database: str, user: str | None = None) -> str:
        return f"postgresql://{user or self.postgres.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if not self._proc.running:
            wait_for_port(self.port, 10, self._proc.spawn())

    @property
    def running(self) -> bool:
        return self._proc.running

    def wait_serving(self, timeout: float = 15) -> None:
        """Until a query through PgBouncer reaches PostgreSQL (after an outage of either)."""
        psql = _find_binary("psql", POSTGRES_BIN_DIRS)
        deadline = time.monotonic() + timeout
        while True:
            answer = subprocess.run(
                [psql, "-X", "-q", "-At", "-c", "SELECT 1", self.dsn],
                capture_output=True,
                check=False,
                timeout=timeout,
            )
            if answer.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"PgBouncer does not serve queries: {answer.stderr.decode()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self._proc.stop()

    def kill(self) -> None:
        self._proc.kill()

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass(frozen=True)
class BrokerSecurity:
    """TLS server files and a mosquitto_passwd file; with these the broker refuses anonymous use."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    password_file: Path

    def config_lines(self) -> str:
        return (
            "allow_anonymous false\n"
            f"password_file {self.password_file}\n"
            f"cafile {self.ca_file}\ncertfile {self.cert_file}\nkeyfile {self.key_file}\n"
        )


class Mosquitto:
    """Mosquitto 2 with persistence, so a graceful restart keeps sessions and queued readings."""

    def __init__(
        self,
        root: Path,
        security: BrokerSecurity | None = None,
        plugin: str | None = None,
        options: str = "",
    ) -> None:
        """`plugin`: the dynamic security plugin's JSON (who may subscribe to what);
        `options`: more lines of mosquitto.conf (e.g. `max_qos 0`)."""
        self.port = free_port()
        folder = root / f"mosquitto-{self.port}"
        folder.mkdir()
        config = folder / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + (security.config_lines() if security else "allow_anonymous true\n")
            + (
                f"plugin {_dynamic_security_plugin()}\n"
                f"plugin_opt_config_file {folder / 'dynsec.json'}\n"
                if plugin is not None
                else ""
            )
            + options
            + "persistence true\n"
            f"persistence_location {folder}/\n"
            # Defaults (1000 queued, 20 in flight) would cap what a reconnecting agent
            # gets back; the README's Guarantees section recommends the same.
            "max_queued_messages 0\n"
            "max_inflight_messages 1000\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        if plugin is not None:
            (folder / "dynsec.json").write_text(plugin)
            (folder / "dynsec.json").chmod(0o666)  # the plugin saves its changes to it
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam("mosquitto")
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        self._proc = _Process(
            [_find_binary("mosquitto"), "-c", str(config)],
            root / f"mosquitto-{self.port}.log",
            None,
        )
        self.start()

    host = "127.0.0.1"

    def start(self) -> None:
        if not self._proc.running:
            try:
                wait_for_port(self.port, 10, self._proc.spawn())
            except ServiceError as err:
                log = self._proc.log_path.read_text(errors="replace")[-1500:]
                raise ServiceError(f"Mosquitto: {err}; its log:\n{log}") from err

    @property
    def running(self) -> bool:
        return self._proc.running

    def stop(self) -> None:
        self._proc.stop()

    def kill(self) -> None:
        self._proc.kill()

    def restart(self) -> None:
        self.stop()
        self.start()


def set_up_agent_role(postgres: Postgres, database: str | None = None) -> str:
    """Apply supabase/migrations in order, and give the agent its login; returns the login.

    The way docs/supabase.md sets up a Supabase project: the owner applies the
    migrations, then creates a login role for the farm host IN ROLE farm_agent.
    """
    database = database or postgres.database
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        postgres.run_sql(database, migration.read_text())
    postgres.run_sql(
        database,
        f"""
        DO $$
        BEGIN
            CREATE ROLE {AGENT_LOGIN} LOGIN IN ROLE farm_agent;
        EXCEPTION WHEN duplicate_object THEN
            GRANT farm_agent TO {AGENT_LOGIN};
        END
        $$;
        """,
    )
    return AGENT_LOGIN


class Services:
    """One temporary folder holding every throwaway service; `close()` leaves nothing behind."""

    def __init__(self) -> None:
        _become_subreaper()
        self.root = Path(tempfile.mkdtemp(prefix="farm-services-"))
        # PostgreSQL runs as another user and must reach its folders.
        self.root.chmod(0o755)
        self._postgres: Postgres | None = None
        self._pgbouncer: PgBouncer | None = None
        self._mosquittos: list[Mosquitto] = []
        self._others: list[Postgres | PgBouncer] = []

    @property
    def postgres(self) -> Postgres:
        if self._postgres is None:
            self._postgres = Postgres(self.root)
        return self._postgres

    @property
    def pgbouncer(self) -> PgBouncer:
        if self._pgbouncer is None:
            self._pgbouncer = PgBouncer(self.root, self.postgres)
        return self._pgbouncer

    def mosquitto(
        self, security: BrokerSecurity | None = None, plugin: str | None = None, options: str = ""
    ) -> Mosquitto:
        """A new broker of its own."""
        broker = Mosquitto(self.root, security, plugin, options)
        self._mosquittos.append(broker)
        return broker

    def postgres_with_tls(self, name: str = "postgres-tls") -> tuple[Postgres, Certificates]:
        """A PostgreSQL of its own serving TLS, and the certificates (with the CA) it uses."""
        folder = self.root / name
        folder.mkdir()
        folder.chmod(0o755)
        certificates = make_certificates(folder)
        server = Postgres(folder, tls=certificates)
        self._others.append(server)
        return server, certificates

    def pgbouncer_with_password(self, password: str, name: str) -> PgBouncer:
        """A PgBouncer of its own in front of `postgres` that checks `password` (md5)."""
        bouncer = PgBouncer(self.root, self.postgres, password=password, name=name)
        self._others.append(bouncer)
        return bouncer

    def pgbouncer_with_limits(self, name: str, **limits: int) -> PgBouncer:
        """A PgBouncer of its own with small limits (`default_pool_size=2`, ...), to exhaust."""
        bouncer = PgBouncer(self.root, self.postgres, name=name, limits=limits)
        self._others.append(bouncer)
        return bouncer

    def logs(self) -> Iterator[Path]:
        yield from self.root.glob("*.log")

    def close(self) -> None:
        for other in self._others:
            other.stop()
        for broker in self._mosquittos:
            broker.stop()
        if self._pgbouncer is not None:
            self._pgbouncer.stop()
        if self._postgres is not None:
            self._postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)
