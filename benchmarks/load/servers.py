"""The servers under load: a throw-away PostgreSQL and the app under gunicorn, on loopback.

Also reads what their processes have cost so far (``/proc``), so a phase can say how the
machine's CPUs were shared between the server, the database and the load generator.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent.parent
PYTHON = sys.executable
# What a TLS-terminating proxy in front of the app adds to every request.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def port_free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Postgres:
    """A throw-away PostgreSQL cluster in a temporary folder, listening on loopback only."""

    def __init__(self) -> None:
        initdb = shutil.which("initdb") or next(
            iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)), None
        )
        if initdb is None:
            raise SystemExit("initdb not found: install PostgreSQL or pass --database-url")
        self.bin = Path(initdb).parent
        self.dir = Path(tempfile.mkdtemp(prefix="load-pg-"))
        self.port = port_free()
        self.pid: int | None = None
        # PostgreSQL refuses to run as root; run it as an unprivileged user instead.
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.dir, self.user)

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["su", "-s", "/bin/sh", self.user, "-c", " ".join(map(_quote, command))]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> str:
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-o",
            options,
            "start",
        )
        self.pid = int((data / "postmaster.pid").read_text().split()[0])
        return f"postgres://postgres@127.0.0.1:{self.port}/loadtest"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def server_environment(database_url: str) -> dict[str, str]:
    """A production configuration: DEBUG off, behind a TLS proxy that sets X-Forwarded-Proto."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database_url,
        LOG_LEVEL="WARNING",
        # Every simulated participant arrives from 127.0.0.1; the limit per address would
        # otherwise admit only the first few (the limit's own cost is still paid).
        PARTICIPANT_START_RATE="1000000/hour",
    )
    return env


class Gunicorn:
    """The app under gunicorn in its own process group, so one SIGKILL takes all of it down."""

    def __init__(self, env: dict[str, str], *, workers: int, threads: int, log: Path) -> None:
        self.env = env
        self.port = port_free()
        self.workers = workers
        self.threads = threads
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start and wait until the health check answers; return the seconds it took."""
        began = time.perf_counter()
        command = [
            PYTHON,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            # The project's production settings (gthread, keep-alive, connections per
            # worker, backlog); only the address and the worker counts are set here.
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            # The shared control socket in ~/.gunicorn would collide with other servers.
            "--no-control-socket",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited at start; see {self.log}")
            if self._healthy():
                return time.perf_counter() - began
            time.sleep(0.1)
        raise SystemExit(f"gunicorn did not answer within 60 s; see {self.log}")

    def _healthy(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/healthz", headers=PROXY_HEADERS)
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def kill(self) -> None:
        """SIGKILL the master and every worker at once: no graceful shutdown, no cleanup."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def database_create(database_url: str) -> None:
    """Create the database named in the URL if it is missing (a fresh cluster has none)."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(database_url: str) -> None:
    """Use the project's models in this process to create studies and check the results."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


@contextlib.contextmanager
def environment(
    args: argparse.Namespace, log: Path
) -> Iterator[tuple[str, str, Gunicorn | None, int | None]]:
    """Database and server for the run; everything started here is stopped on the way out."""
    postgres = None if args.database_url else Postgres()
    server = None
    try:
        database_url = args.database_url or postgres.start()  # type: ignore[union-attr]
        database_create(database_url)
        if args.target_url:
            django_setup(database_url)
            yield database_url, args.target_url.rstrip("/"), None, None
            return
        env = server_environment(database_url)
        manage(env, "migrate", "--no-input")
        manage(env, "collectstatic", "--no-input")
        django_setup(database_url)
        server = Gunicorn(env, workers=args.workers, threads=args.threads, log=log)
        server.start()
        yield database_url, server.url, server, postgres.pid if postgres else None
    finally:
        if server:
            server.stop()
        if postgres:
            postgres.stop()


def group_members(leader: int) -> Iterator[tuple[int, list[str]]]:
    """Each live process that is ``leader``, its child or in its process group, with the
    fields of its ``/proc/PID/stat`` after the name (field 3 onwards).

    Children are matched by parent as well as by group because PostgreSQL's backends
    each start a session of their own.
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while the folder was listed
        pid = int(stat.parent.name)
        if leader in (pid, int(fields[1]), int(fields[2])):
            yield pid, fields


def group_cpu(leader: int) -> float:
    """CPU seconds of ``leader``'s group (``group_members``), and of the leader's reaped
    children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid, fields in group_members(leader):
        total += sum(int(x) for x in fields[11:13]) / tick
        if pid == leader:
            total += sum(int(x) for x in fields[13:15]) / tick
    return total
