"""Load, saturation and crash test of the participant flow: gunicorn + PostgreSQL over HTTP.

Simulated participants go through the whole flow the way a browser without JavaScript
does (Prolific link, consent, instructions, every item and attention check, completion),
reading each form's CSRF token, action and fields from the HTML. Three phases:

* ``burst``: all participants arrive within ``--arrival-seconds`` and think 2–20 s on
  every page, scaled by ``--time-scale``;
* ``saturation``: the same participants all at once with no think time, for the maximum
  rating submissions per second;
* ``crash`` (``--crash``): a burst during which the server is killed with SIGKILL and
  restarted; participants whose requests fail reopen their Prolific link and carry on.

After every phase the database is checked: every acknowledged submission is stored with
the values sent, nothing is stored twice, each participant has ``per_condition`` items from
every condition and no question twice, and exposure within a condition spreads by at most
one. The server runs on loopback only, every phase has a deadline, and the last line printed
is one JSON object with the figures.

Requests go through a small HTTP/1.1 client on asyncio streams, defined here: the load
generator shares the two CPUs with the server it measures, and a general-purpose client
costs several times more CPU per request.

Run from the project root, as root or as an ordinary user (PostgreSQL is started as
``nobody`` when run as root)::

    .venv/bin/python benchmarks/load_participants.py --crash
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import html
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CONDITIONS = ("MT:original", "CF:original", "MT+CF:original", "MT+CF:revised")
LIKERT_BY_LABEL = {
    "Strongly disagree": 1,
    "Disagree": 2,
    "Neither agree nor disagree": 3,
    "Agree": 4,
    "Strongly agree": 5,
}
# What a TLS-terminating proxy in front of the app adds to every request.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
INSTRUCTION = re.compile(r"please choose “([^”]+)”")
# Hard limits that keep a mistyped argument from running for hours or opening
# thousands of sockets.
MAX_PARTICIPANTS = 2000
FLOOR_REQUESTS = 3000  # /healthz requests of the baseline measured before saturation
MAX_PHASE_SECONDS = 1800


# --------------------------------------------------------------------------- servers


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


# --------------------------------------------------------------------------- Django side


def django_setup(database_url: str) -> None:
    """Use the project's models in this process to create studies and check the results."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def study_create(*, slug: str, questions: int) -> None:
    """A live study with ``questions`` questions, each explained once per condition."""
    from studyapp.importing import explanations_read
    from studyapp.services import study_create_from_explanations

    choices = ["bank", "library", "garden", "kitchen", "school"]
    lines = [
        json.dumps(
            {
                "condition": condition,
                "question_id": f"{slug}-q{q:04d}",
                "question": f"Where would you most likely find thing number {q}?",
                "choices": choices,
                "answer": choices[q % 5],
                "predicted_answer": choices[(q + c) % 5],
                "explanation": f"Thing {q} is usually found there because "
                + "people keep such things in that place " * (1 + (q + c) % 4),
                "student": "t5-v1_1-small",
                "method": condition.split(":")[0].lower(),
                "data_variant": condition.split(":")[1],
                "run": "load-test",
            }
        )
        for q in range(questions)
        for c, condition in enumerate(CONDITIONS)
    ]
    study_create_from_explanations(
        slug=slug, records=explanations_read(lines), title="Load test", live=True
    )


@dataclass(frozen=True)
class Ack:
    """A submission the server acknowledged: what the client sent and was told was saved."""

    pid: str
    token: str
    values: dict[str, int]


def study_check(*, slug: str, acks: list[Ack], pids: list[str]) -> dict[str, Any]:
    """Compare the database with what the participants were told; return counts of problems."""
    from django.db.models import Count

    from studyapp.models import (
        Assignment,
        AttentionCheckResponse,
        Dimension,
        Participant,
        Rating,
        Study,
    )

    study = Study.objects.get(slug=slug)
    participants = {p.prolific_pid: p for p in Participant.objects.filter(study=study)}
    assignments = {
        (a.participant.prolific_pid, a.position): a
        for a in Assignment.objects.filter(participant__study=study).select_related(
            "participant", "explanation"
        )
    }
    checks = {
        (c.participant.prolific_pid, c.before_position): c
        for c in AttentionCheckResponse.objects.filter(participant__study=study).select_related(
            "participant"
        )
    }
    ratings: dict[int, dict[str, int]] = defaultdict(dict)
    duplicated = 0
    for rating in Rating.objects.filter(assignment__participant__study=study):
        if rating.dimension in ratings[rating.assignment_id]:
            duplicated += 1
        ratings[rating.assignment_id][rating.dimension] = rating.value

    lost = 0
    for ack in acks:
        kind, _, number = ack.token.partition("-")
        if kind == "check":
            check = checks.get((ack.pid, int(number)))
            lost += check is None or check.answered_at is None
            continue
        assignment = assignments.get((ack.pid, int(number)))
        stored = ratings.get(assignment.pk, {}) if assignment else {}
        lost += stored != ack.values
    acked_tokens = Counter((ack.pid, ack.token) for ack in acks)

    per_participant = defaultdict(list)
    for (pid, _), assignment in assignments.items():
        per_participant[pid].append(assignment)
    unbalanced = question_twice = 0
    for items in per_participant.values():
        by_condition = Counter(a.explanation.condition_id for a in items)
        wanted = {study.per_condition} if by_condition else set()
        unbalanced += set(by_condition.values()) != wanted or len(by_condition) != len(CONDITIONS)
        question_twice += len({a.question_id for a in items}) != len(items)

    answered = Counter(
        Assignment.objects.filter(participant__study=study, answered_at__isnull=False)
        .values_list("explanation_id", flat=True)
        .iterator()
    )
    spread = 0
    for condition in study.conditions.annotate(n=Count("explanations")):
        counts = [answered.get(e, 0) for e in condition.explanations.values_list("id", flat=True)]
        spread = max(spread, max(counts) - min(counts))
    partial = sum(
        1
        for a in assignments.values()
        if (a.answered_at is not None) != (len(ratings.get(a.pk, {})) == len(Dimension))
    )
    completed = sum(p.status == Participant.Status.COMPLETED for p in participants.values())
    return {
        "participants": len(participants),
        "completed": completed,
        "not_completed": len(pids) - completed,
        "acknowledged_submissions": len(acks),
        "lost": lost,
        "acknowledged_twice": sum(n > 1 for n in acked_tokens.values()),
        "duplicated_ratings": duplicated,
        "partially_stored_items": partial,
        "unbalanced_participants": unbalanced,
        "question_twice_participants": question_twice,
        "exposure_spread_max": spread,
        "ratings_stored": sum(len(r) for r in ratings.values()),
    }


# --------------------------------------------------------------------------- client side


# Start tags and their attributes, as an HTML tokenizer reads them. Only the tags a
# browser without JavaScript acts on are picked out; the rest of the page is skipped
# unread, which keeps the load generator's share of the two CPUs small.
TAG = re.compile(r"<(form|input|a|link|script)\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.I)
ATTRIBUTE = re.compile(r"""([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")


@dataclass
class Page:
    """The parts of a page a browser without JavaScript acts on: forms, links, assets."""

    forms: list[dict[str, Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)

    def tag(self, name: str, a: dict[str, str]) -> None:
        if name == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "hx_post": a.get("hx-post", ""),
                    "method": a.get("method", "get").lower(),
                    "hidden": {},
                    "radios": defaultdict(list),
                }
            )
        elif name == "input" and self.forms:
            form = self.forms[-1]
            kind = a.get("type", "text").lower()
            if kind == "hidden":
                form["hidden"][a.get("name", "")] = a.get("value", "")
            elif kind == "radio":
                form["radios"][a.get("name", "")].append(a.get("value", ""))
        elif name == "a" and a.get("href"):
            self.links.append(a["href"])
        elif (name == "link" and a.get("rel") == "stylesheet") or (
            name == "script" and a.get("src")
        ):
            self.assets.append(a.get("href") or a.get("src", ""))


@functools.lru_cache(maxsize=4096)
def _attributes(source: str) -> dict[str, str]:
    """A tag's attributes by lower-case name, unescaped; callers must not change the dict.

    Most tags come back unchanged on every page (the radio buttons of each row, the
    stylesheet and script), so each distinct tag is read once.
    """
    return {
        key.lower(): html.unescape(double or single or bare or "")
        for key, double, single, bare in ATTRIBUTE.findall(source)
    }


def page_parse(text: str) -> Page:
    page = Page()
    for name, source in TAG.findall(text):
        page.tag(name.lower(), _attributes(source))
    return page


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client can read."""


class ServerDisconnected(ProtocolError):
    """The server closed the connection before the response was complete."""


# What a request can fail with short of an HTTP status: refused or reset connections,
# timeouts (``TimeoutError`` is an ``OSError``) and broken or cut-off responses.
HTTP_ERRORS = (OSError, ProtocolError)


class Headers:
    """Response headers: case-insensitive, every value of a repeated header kept."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, list[str]] = {}

    def add(self, name: str, value: str) -> None:
        values = self._values.get(name.lower())
        if values is None:
            self._values[name.lower()] = [value]
        else:
            values.append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name.lower())
        return ", ".join(values) if values else default

    def get_list(self, name: str) -> list[str]:
        """Every value of ``name`` in order, e.g. each ``Set-Cookie`` on its own."""
        return self._values.get(name.lower(), [])

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values


class Response:
    """Status, headers and body of one answer, and the path it answered."""

    __slots__ = ("_text", "content", "headers", "path", "status_code")

    def __init__(self, status_code: int, headers: Headers, content: bytes, path: str) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.path = path
        self._text: str | None = None

    @property
    def text(self) -> str:
        """The body decoded: decompressed first if the server compressed it."""
        if self._text is None:
            body = self.content
            encoding = (self.headers.get("content-encoding") or "").strip().lower()
            if encoding == "gzip":
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif encoding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            charset = "utf-8"
            for part in (self.headers.get("content-type") or "").split(";")[1:]:
                key, _, value = part.partition("=")
                if key.strip().lower() == "charset" and value.strip():
                    charset = value.strip().strip('"')
            try:
                self._text = body.decode(charset, errors="replace")
            except LookupError:
                self._text = body.decode("utf-8", errors="replace")
        return self._text


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        # Closing the transport is enough: waiting for the close costs CPU and tells nothing.
        self.writer.close()


class ConnectionPool:
    """A minimal HTTP/1.1 client: keep-alive connections to one host, shared by participants.

    At most ``max_connections`` connections are open at once, idle ones included. An idle
    connection older than ``keepalive_expiry`` seconds is closed instead of reused, as
    browsers do: the server may be closing it at that moment, and a request sent on it
    would get no answer at all. If a GET on a reused connection fails before any byte of
    the response arrives, it is sent once more on a new connection; a POST is never sent
    twice, as a retried submission could be stored twice.
    """

    def __init__(
        self, base_url: str, *, max_connections: int, keepalive_expiry: float, timeout: float
    ) -> None:
        split = urlsplit(base_url)
        if split.scheme != "http" or not split.hostname:
            raise ValueError(f"only http:// URLs are supported: {base_url}")
        self.host = split.hostname
        self.port = split.port or 80
        self.keepalive_expiry = keepalive_expiry
        self.timeout = timeout
        self.slots = asyncio.Semaphore(max_connections)
        self.idle: list[_Connection] = []
        # What every request sends, as httpx sent it.
        self.common = (
            f"Host: {split.netloc}\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n"
            "Connection: keep-alive\r\nUser-Agent: load-participants\r\n"
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if not url.startswith("/"):
            # An absolute URL to the same host (redirects may carry one).
            split = urlsplit(url)
            url = (split.path or "/") + (f"?{split.query}" if split.query else "")
        lines = [f"{method} {url} HTTP/1.1\r\n", self.common]
        if headers:
            lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        body = b""
        if data is not None or method == "POST":
            body = urlencode(data or {}).encode()
            lines.append(
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n"
            )
        lines.append("\r\n")
        message = "".join(lines).encode() + body
        path = url.partition("?")[0]
        async with self.slots:
            connection = self._idle_take()
            if connection is not None:
                try:
                    return await self._exchange(connection, message, path)
                except _NothingReceived as failure:
                    if method != "GET":
                        raise failure.error from None
            return await self._exchange(await self._open(), message, path, fresh=True)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()

    def _idle_take(self) -> _Connection | None:
        """The most recently used idle connection still fit for reuse; older ones are closed."""
        expired = time.monotonic() - self.keepalive_expiry
        while self.idle:
            connection = self.idle.pop()
            if connection.idle_since < expired:
                # The rest were idle even longer.
                connection.close()
                self.close()
                return None
            if connection.reader.at_eof() or connection.writer.is_closing():
                connection.close()
                continue
            return connection
        return None

    async def _open(self) -> _Connection:
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, message: bytes, path: str, *, fresh: bool = False
    ) -> Response:
        reader = connection.reader
        try:
            async with asyncio.timeout(self.timeout):
                connection.writer.write(message)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial and not fresh:
                        raise _NothingReceived(ServerDisconnected("no response")) from exc
                    raise ServerDisconnected("connection closed in the response head") from exc
                except ConnectionError as exc:
                    # A reset hides bytes that came before it; they wait in the buffer.
                    if not fresh and not getattr(reader, "_buffer", b""):
                        raise _NothingReceived(exc) from exc
                    raise
                status, headers, keep_alive = _head_parse(head)
                while 100 <= status < 200:  # interim answers precede the real one
                    status, headers, keep_alive = _head_parse(await reader.readuntil(b"\r\n\r\n"))
                content, keep_alive = await _body_read(reader, status, headers, keep_alive)
        except asyncio.IncompleteReadError as exc:
            connection.close()
            raise ServerDisconnected("connection closed in the response body") from exc
        except (asyncio.LimitOverrunError, ValueError) as exc:
            connection.close()
            raise ProtocolError(str(exc)) from exc
        except BaseException:
            # A timeout, a reset or a cancelled task: the connection's state is unknown.
            connection.close()
            raise
        if keep_alive:
            connection.idle_since = time.monotonic()
            self.idle.append(connection)
        else:
            connection.close()
        return Response(status, headers, content, path)


class _NothingReceived(Exception):
    """A reused connection failed before any byte of the response arrived."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _head_parse(head: bytes) -> tuple[int, Headers, bool]:
    """Status, headers and whether the connection stays open, from a response head."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(rest[:3])
    headers = Headers()
    for line in lines[1:]:
        if line:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"malformed header line: {line[:80]!r}")
            headers.add(name.strip(), value.strip())
    tokens = (headers.get("connection") or "").lower()
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return status, headers, keep_alive


async def _body_read(
    reader: asyncio.StreamReader, status: int, headers: Headers, keep_alive: bool
) -> tuple[bytes, bool]:
    """The body, framed by chunks or Content-Length, and whether the connection is reusable."""
    if status in (204, 304):
        return b"", keep_alive
    if "chunked" in (headers.get("transfer-encoding") or "").lower():
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            chunks.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailer fields, unused
        return b"".join(chunks), keep_alive
    length = headers.get("content-length")
    if length is not None:
        size = int(length.split(",")[0])
        return (await reader.readexactly(size) if size else b""), keep_alive
    # Neither framing: the body runs until the server closes the connection.
    return await reader.read(), False


def cookie_parse(header: str) -> list[tuple[str, str, bool]]:
    """Name, value and whether it deletes the cookie, for each cookie in a Set-Cookie value.

    The server sends one plain ``name=value`` per header, followed by attributes; a quoted
    value, which needs unescaping, goes through ``SimpleCookie`` instead.
    """
    pair, *attributes = header.split(";")
    name, equals, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not equals or not name or value.startswith('"'):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        return [
            (key, m.value, m["max-age"] == "0" or "1970" in m["expires"]) for key, m in jar.items()
        ]
    deleted = False
    for attribute in attributes:
        key, _, setting = attribute.partition("=")
        key = key.strip().lower()
        if (key == "max-age" and setting.strip() == "0") or (
            key == "expires" and "1970" in setting
        ):
            deleted = True
    return [(name, value, deleted)]


class RequestFailed(Exception):
    pass


@dataclass
class Recorder:
    """Latencies per page type, errors and acknowledged submissions of one phase."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    acks: list[Ack] = field(default_factory=list)
    rating_times: list[float] = field(default_factory=list)
    # Every acknowledged item form, attention checks included (rating_times: rated items).
    submission_times: list[float] = field(default_factory=list)
    requests: int = 0

    def summary(self, wall: float) -> dict[str, Any]:
        pages = {
            kind: {
                "n": len(values),
                "p50_ms": round(_percentile(values, 50) * 1000, 1),
                "p95_ms": round(_percentile(values, 95) * 1000, 1),
                "p99_ms": round(_percentile(values, 99) * 1000, 1),
                "max_ms": round(max(values) * 1000, 1),
            }
            for kind, values in sorted(self.latencies.items())
        }
        return {
            "wall_s": round(wall, 2),
            "requests": self.requests,
            "requests_per_s": round(self.requests / wall, 1) if wall else 0,
            "ratings": len(self.rating_times),
            "ratings_per_s": _rate(self.rating_times),
            "submissions": len(self.submission_times),
            "submissions_per_s": _rate(self.submission_times),
            "rating_window_s": round(_span(self.rating_times), 2),
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "pages": pages,
        }


def _span(times: list[float]) -> float:
    """Seconds from the first to the last of ``times`` (0 for fewer than two)."""
    return (max(times) - min(times)) if times else 0.0


def _rate(times: list[float]) -> float:
    """Events per second over the span from the first to the last."""
    window = _span(times)
    return round(len(times) / window, 1) if window else 0


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass
class Settings:
    base_url: str
    slug: str
    time_scale: float
    behind_proxy: bool
    recover: bool
    # Share of participants whose browser runs JavaScript: their items are posted by htmx
    # and answered with the next item's partial, one request per item instead of two.
    htmx_share: float = 0.0


class Participant:
    """One simulated person with their own cookies, acting on what each page offers."""

    def __init__(
        self, client: ConnectionPool, settings: Settings, recorder: Recorder, pid: str
    ) -> None:
        self.client = client
        self.settings = settings
        self.recorder = recorder
        self.pid = pid
        self.rng = random.Random(pid)
        self.javascript = self.rng.random() < settings.htmx_share
        self.cookies: dict[str, str] = {}
        self.assets_seen: set[str] = set()
        self.recoveries = 0
        self.finished = False
        split = urlsplit(settings.base_url)
        # Behind a TLS proxy the app sees https, so a browser's Origin is the https one.
        scheme = "https" if settings.behind_proxy else split.scheme
        self.origin = f"{scheme}://{split.netloc}"
        query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "load", "SESSION_ID": f"s-{pid}"})
        self.entry_url = f"/s/{settings.slug}/?{query}"

    async def think(self) -> None:
        if self.settings.time_scale > 0:
            await asyncio.sleep(self.rng.uniform(2, 20) * self.settings.time_scale)

    async def fetch(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        expect: int,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.settings.behind_proxy:
            headers.update(PROXY_HEADERS)
        if method == "POST":
            headers["Origin"] = self.origin
            headers["Referer"] = self.origin + url
        began = time.perf_counter()
        try:
            response = await self.client.request(method, url, data=data, headers=headers)
        except HTTP_ERRORS as exc:
            self.recorder.errors[f"{kind}: {type(exc).__name__}"] += 1
            raise RequestFailed(kind) from exc
        elapsed = time.perf_counter() - began
        self.recorder.requests += 1
        self._cookies_store(response)
        if response.status_code != expect:
            self.recorder.errors[f"{kind}: HTTP {response.status_code}"] += 1
            raise RequestFailed(kind)
        self.recorder.latencies[kind].append(elapsed)
        return response

    def _cookies_store(self, response: Response) -> None:
        # Cookies are kept by hand: the app marks them Secure (it believes it is on https
        # behind the proxy), which a stock cookie jar would never send over loopback http.
        for header in response.headers.get_list("set-cookie"):
            for name, value, deleted in cookie_parse(header):
                if deleted:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value

    async def assets_fetch(self, page: Page) -> None:
        """A browser loads each stylesheet and script once, then keeps it in its cache."""
        for asset in page.assets:
            if asset not in self.assets_seen:
                self.assets_seen.add(asset)
                await self.fetch("static GET", "GET", asset, expect=200)

    async def run(self, deadline: float) -> None:
        response = await self._open_link()
        while time.monotonic() < deadline:
            try:
                response = await self._act(response)
            except RequestFailed:
                if not self.settings.recover or self.recoveries >= 100:
                    return
                self.recoveries += 1
                await asyncio.sleep(0.5)
                # Reopened in a new browser: resuming must not depend on the old session.
                self.cookies.clear()
                response = await self._open_link()
                continue
            if self.finished:
                return

    async def _open_link(self) -> Response | None:
        """Open the Prolific link in a fresh tab, as a person does after an error page."""
        try:
            return await self.fetch("entry GET", "GET", self.entry_url, expect=302)
        except RequestFailed:
            return None

    async def _act(self, response: Response | None) -> Response:
        if response is None:
            raise RequestFailed("no page")
        if response.status_code == 302:
            return await self._follow(response.headers["location"])
        path = response.path
        page = page_parse(response.text)
        await self.assets_fetch(page)
        if path.endswith("/consent/"):
            await self.think()
            form = page.forms[0]
            data = {**form["hidden"], "decision": "agree"}
            return await self.fetch("consent POST", "POST", form["action"], expect=302, data=data)
        if path.endswith("/instructions/"):
            await self.think()
            start = next(link for link in page.links if link.endswith("/item/"))
            return await self.fetch("item GET", "GET", start, expect=200)
        if path.endswith("/item/"):
            return await self._item_answer(response.text, page)
        if path.endswith("/done/"):
            self.finished = True
            return response
        raise RequestFailed(f"unexpected page {path}")

    async def _follow(self, location: str) -> Response:
        page = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
        kind = page if page in ("item", "consent", "instructions", "done") else "other"
        return await self.fetch(f"{kind} GET", "GET", location, expect=200)

    async def _item_answer(self, text: str, page: Page) -> Response:
        form = next(f for f in page.forms if f["method"] == "post")
        token = form["hidden"]["step"]
        rows = sorted(form["radios"])
        if not rows:
            raise RequestFailed("item form without a row to rate")
        # Like a person, answer every row the page shows, whatever the rows are called.
        if token.startswith("check-"):
            match = INSTRUCTION.search(text)
            if match is None:
                raise RequestFailed("attention check without an instruction")
            values = dict.fromkeys(rows, LIKERT_BY_LABEL[match.group(1)])
        else:
            values = {row: int(self.rng.choice(form["radios"][row])) for row in rows}
        await self.think()
        data = {**form["hidden"], **{row: str(value) for row, value in values.items()}}
        if self.javascript and form["hx_post"]:
            headers = {"HX-Request": "true", "X-CSRFToken": form["hidden"]["csrfmiddlewaretoken"]}
            response = await self.fetch(
                "item POST htmx", "POST", form["hx_post"], expect=200, data=data, headers=headers
            )
            if "hx-refresh" in response.headers:
                raise RequestFailed("htmx was asked to reload the page")
        else:
            response = await self.fetch("item POST", "POST", form["action"], expect=302, data=data)
        self.recorder.acks.append(Ack(self.pid, token, values))
        now = time.monotonic()
        self.recorder.submission_times.append(now)
        if token.startswith("item-"):
            self.recorder.rating_times.append(now)
        if "hx-redirect" in response.headers:
            return await self._follow(response.headers["hx-redirect"])
        return response


async def participants_run(
    *,
    settings: Settings,
    recorder: Recorder,
    pids: list[str],
    arrival_seconds: float,
    deadline_seconds: float,
    concurrency: int | None = None,
    during: Any = None,
) -> tuple[float, int]:
    """Run every participant to completion or the deadline; return wall time and how many finished.

    ``concurrency`` caps how many participants are in the flow at once (the others wait
    for a place), so a saturation run keeps the server busy without the load generator
    spending its CPU on hundreds of requests that would only queue.
    """
    slots = asyncio.Semaphore(concurrency or len(pids))

    async def one(person: Participant, delay: float, deadline: float) -> None:
        await asyncio.sleep(delay)
        async with slots:
            await person.run(deadline)

    # Idle connections are dropped before the server's 5 s keep-alive runs out, as browsers
    # do; reusing one the server is closing at that moment fails with no response at all.
    # The pool keeps no cookies: each participant sends its own.
    client = ConnectionPool(
        settings.base_url,
        max_connections=concurrency or len(pids),
        keepalive_expiry=2.0,
        timeout=30.0,
    )
    try:
        people = [Participant(client, settings, recorder, pid) for pid in pids]
        rng = random.Random(settings.slug)
        began = time.monotonic()
        deadline = began + deadline_seconds
        tasks = [
            asyncio.create_task(one(p, rng.uniform(0, arrival_seconds), deadline)) for p in people
        ]
        side = asyncio.create_task(during(recorder)) if during else None
        await asyncio.wait(tasks, timeout=deadline_seconds + 35)
        for task in tasks:
            task.cancel()
        if side:
            await side
        wall = time.monotonic() - began
    finally:
        client.close()
    return wall, sum(p.finished for p in people)


async def floor_run(base_url: str, *, concurrency: int, requests: int) -> dict[str, Any]:
    """The same server's rate on its cheapest page that reaches the database (``/healthz``:
    one ``SELECT 1``, a JSON answer), with as many requests in flight as at saturation.

    The saturation figures are read against it: it is what this machine gives a Django
    request through the same gunicorn, middleware and database connection when the view
    itself does next to nothing, so the ratio shows what the participant pages add.
    """
    client = ConnectionPool(
        base_url, max_connections=concurrency, keepalive_expiry=2.0, timeout=30.0
    )
    latencies: list[float] = []
    failures = 0
    left = requests

    async def loop() -> None:
        nonlocal left, failures
        while left > 0:
            left -= 1
            began = time.perf_counter()
            try:
                response = await client.request("GET", "/healthz", headers=dict(PROXY_HEADERS))
            except HTTP_ERRORS:
                failures += 1
                continue
            if response.status_code != 200:
                failures += 1
                continue
            latencies.append(time.perf_counter() - began)

    began = time.monotonic()
    try:
        await asyncio.gather(*(loop() for _ in range(concurrency)))
    finally:
        client.close()
    wall = time.monotonic() - began
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / wall, 1) if wall else 0,
        "p50_ms": round(_percentile(latencies, 50) * 1000, 1) if latencies else 0,
        "p99_ms": round(_percentile(latencies, 99) * 1000, 1) if latencies else 0,
        "errors": failures,
    }


# --------------------------------------------------------------------------- phases


@dataclass
class Run:
    args: argparse.Namespace
    database_url: str
    base_url: str
    server: Gunicorn | None
    postgres_pid: int | None = None
    server_cpu_lost: float = 0.0
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    def phase(
        self,
        name: str,
        *,
        time_scale: float,
        arrival: float,
        crash: bool,
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        slug = f"load-{name}-{self.run_id}"
        study_create(slug=slug, questions=self.args.questions)
        pids = [f"{name}{self.run_id}{n:05d}" for n in range(self.args.participants)]
        settings = Settings(
            base_url=self.base_url,
            slug=slug,
            time_scale=time_scale,
            behind_proxy=self.server is not None,
            recover=True,
            htmx_share=self.args.htmx_share,
        )
        recorder = Recorder()
        outage: dict[str, Any] = {}
        load_before = os.getloadavg()
        cpu_before = _cpu_times()
        used_before = self._cpu_used()
        wall, finished = asyncio.run(
            participants_run(
                settings=settings,
                recorder=recorder,
                pids=pids,
                arrival_seconds=arrival,
                deadline_seconds=self.args.phase_seconds,
                concurrency=concurrency,
                during=self._crash_midway(outage) if crash else None,
            )
        )
        # Taken before the database check, which runs in this process and is not load.
        used_after = self._cpu_used()
        shares = _cpu_shares(cpu_before, _cpu_times())
        result = {
            "participants": len(pids),
            "finished": finished,
            "time_scale": time_scale,
            "arrival_seconds": arrival,
            "concurrency": concurrency or len(pids),
            **recorder.summary(wall),
            "database": study_check(slug=slug, acks=recorder.acks, pids=pids),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_busy_share": shares["busy"],
            "cpu_iowait_share": shares["iowait"],
            "cpu_steal_share": shares["steal"],
            "cpu_seconds": {
                part: round(seconds - used_before.get(part, 0.0), 1)
                for part, seconds in used_after.items()
            },
        }
        if crash:
            result["crash"] = outage
        return result

    def _cpu_used(self) -> dict[str, float]:
        """CPU seconds so far of this load generator, the app server and the database.

        Shows how the two cores were shared: the simulated browsers compete with the
        server for the same CPUs. The server's figure is that of its live processes.
        """
        used = {"load generator": sum(os.times()[:2])}
        if self.server is not None and self.server.process is not None:
            used["gunicorn"] = _group_cpu(self.server.process.pid) + self.server_cpu_lost
        if self.postgres_pid is not None:
            used["postgresql"] = _group_cpu(self.postgres_pid)
        return used

    def _crash_midway(self, outage: dict[str, Any]) -> Any:
        server = self.server
        assert server is not None
        # Kill once about a third of the expected submissions are in, so participants
        # are spread over every stage of the flow when the server goes down.
        target = max(1, self.args.participants * 14 // 3)

        async def crash(recorder: Recorder) -> None:
            deadline = time.monotonic() + self.args.phase_seconds
            while len(recorder.acks) < target and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            outage["acknowledged_before_kill"] = len(recorder.acks)
            # The restarted server counts its CPU from zero; keep what the killed one used.
            self.server_cpu_lost += _group_cpu(server.process.pid) if server.process else 0.0
            killed = time.monotonic()
            await asyncio.to_thread(server.kill)
            outage["restart_s"] = round(await asyncio.to_thread(server.start), 2)
            outage["down_s"] = round(time.monotonic() - killed, 2)

        return crash


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


def _group_cpu(leader: int) -> float:
    """CPU seconds of ``leader``'s group (``group_members``), and of the leader's reaped
    children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid, fields in group_members(leader):
        total += sum(int(x) for x in fields[11:13]) / tick
        if pid == leader:
            total += sum(int(x) for x in fields[13:15]) / tick
    return total


def _cpu_times() -> list[float]:
    """The machine's CPU time so far: user, nice, system, idle, iowait, irq, softirq, steal..."""
    with open("/proc/stat") as handle:
        return [float(x) for x in handle.readline().split()[1:]]


def _cpu_shares(before: list[float], after: list[float]) -> dict[str, float]:
    """Shares of the machine's CPU time between two readings: busy (neither idle nor
    waiting on the disk), waiting on the disk (iowait) and taken by the host (steal)."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent)
    if not total:
        return {"busy": 0.0, "iowait": 0.0, "steal": 0.0}
    return {
        "busy": round(1 - (spent[3] + spent[4]) / total, 2),
        "iowait": round(spent[4] / total, 2),
        "steal": round(spent[7] / total, 2) if len(spent) > 7 else 0.0,
    }


def print_phase(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name}: {result['participants']} participants, {result['finished']} finished")
    print(
        f"   wall {result['wall_s']} s, {result['requests']} requests "
        f"({result['requests_per_s']}/s), {result['ratings']} ratings "
        f"({result['ratings_per_s']}/s over {result['rating_window_s']} s), "
        f"{result['submissions']} item forms with checks ({result['submissions_per_s']}/s), "
        f"errors {result['errors']} {result['errors_by_kind'] or ''}"
    )
    print(f"   {'page':<17}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind, row in result["pages"].items():
        print(
            f"   {kind:<17}{row['n']:>7}{row['p50_ms']:>9}{row['p95_ms']:>9}"
            f"{row['p99_ms']:>9}{row['max_ms']:>9}"
        )
    print(f"   database: {result['database']}")
    if "crash" in result:
        print(f"   crash: {result['crash']}")
    print(f"   load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    if "floor_healthz" in result:
        floor = result["floor_healthz"]
        print(
            f"   baseline /healthz, same server and concurrency: {floor['requests_per_s']} "
            f"requests/s (p50 {floor['p50_ms']} ms, errors {floor['errors']}); the flow's "
            f"requests ran at {result['requests_vs_floor']:.2f}x that rate"
        )
    print(
        f"   CPU seconds {result['cpu_seconds']}, machine busy {result['cpu_busy_share']:.0%} "
        f"(of it taken by the host {result['cpu_steal_share']:.0%}), "
        f"waiting on the disk {result['cpu_iowait_share']:.0%}"
    )
    sys.stdout.flush()


def targets_check(results: dict[str, dict[str, Any]], slo_ms: float, min_rate: float) -> list[str]:
    """The issue's targets that this run missed, each as one sentence."""
    missed = []
    for name, result in results.items():
        db = result["database"]
        for problem in (
            "lost",
            "duplicated_ratings",
            "partially_stored_items",
            "not_completed",
            "unbalanced_participants",
            "question_twice_participants",
        ):
            if db[problem]:
                missed.append(f"{name}: {problem} = {db[problem]}")
        if db["exposure_spread_max"] > 1:
            missed.append(f"{name}: exposure spread {db['exposure_spread_max']} > 1")
    if "burst" in results:
        burst = results["burst"]
        if burst["errors"]:
            missed.append(f"burst: {burst['errors']} errors")
        for kind, row in burst["pages"].items():
            if row["p99_ms"] >= slo_ms:
                missed.append(f"burst: {kind} p99 {row['p99_ms']} ms >= {slo_ms} ms")
    if "saturation" in results and results["saturation"]["ratings_per_s"] < min_rate:
        missed.append(
            f"saturation: {results['saturation']['ratings_per_s']} ratings/s < {min_rate}"
        )
    return missed


# --------------------------------------------------------------------------- main


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=200, help="per phase (default 200)")
    parser.add_argument(
        "--modes", default="burst,saturation", help="comma-separated: burst, saturation"
    )
    parser.add_argument("--crash", action="store_true", help="add the kill-and-restart phase")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="factor on the 2-20 s think time per page (default 1: the pace of real people; "
        "0.1 packs the same requests into a tenth of the time)",
    )
    parser.add_argument("--arrival-seconds", type=float, default=60.0)
    parser.add_argument(
        "--htmx-share",
        type=float,
        default=1.0,
        help="share of participants with JavaScript, whose items are posted by htmx "
        "(default 1, as in nearly every participant's browser; 0: every participant "
        "browses without JavaScript, two requests an item)",
    )
    parser.add_argument(
        "--questions", type=int, default=150, help="questions in the pool, each x 4 conditions"
    )
    parser.add_argument(
        "--saturation-concurrency",
        type=int,
        default=24,
        help="participants in the flow at once in the saturation phase (default 24, four "
        "times the server's threads: enough to keep every thread busy while others wait "
        "on the database)",
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    # As gunicorn.conf.py: two threads a worker cover the waits on the database.
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--phase-seconds", type=float, default=600, help="deadline of each phase")
    parser.add_argument(
        "--database-url", help="use this PostgreSQL database instead of a throw-away server"
    )
    parser.add_argument(
        "--target-url",
        help="load an already running server on loopback (needs --database-url; no --crash)",
    )
    parser.add_argument("--p99-target-ms", type=float, default=150.0)
    parser.add_argument("--ratings-target", type=float, default=300.0)
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"burst", "saturation"}
    if unknown:
        parser.error(f"--modes: unknown mode(s) {sorted(unknown)}; use burst and/or saturation")
    args.modes = modes
    if not 1 <= args.participants <= MAX_PARTICIPANTS:
        parser.error(f"--participants must be between 1 and {MAX_PARTICIPANTS}")
    if not 0 < args.phase_seconds <= MAX_PHASE_SECONDS:
        parser.error(f"--phase-seconds must be between 1 and {MAX_PHASE_SECONDS}")
    if not 1 <= args.saturation_concurrency <= MAX_PARTICIPANTS:
        parser.error(f"--saturation-concurrency must be between 1 and {MAX_PARTICIPANTS}")
    if not 0 <= args.htmx_share <= 1:
        parser.error("--htmx-share must be between 0 and 1")
    if args.time_scale < 0 or args.arrival_seconds < 0:
        parser.error("--time-scale and --arrival-seconds cannot be negative")
    if args.questions < 12:
        parser.error("--questions must be at least 12 (each participant rates 12 questions)")
    if args.target_url:
        host = urlsplit(args.target_url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error("--target-url must be on loopback (127.0.0.1, localhost or ::1)")
        if not args.database_url:
            parser.error("--target-url needs --database-url to check what was stored")
        if args.crash:
            parser.error("--crash needs a server this script starts; drop --target-url")
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a postgres:// URL")
    return args


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


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    # A SIGTERM (a timeout, a cancelled job) unwinds like Ctrl-C, so the database and the
    # server started here are stopped on the way out instead of being left running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    log = Path(tempfile.mkdtemp(prefix="load-")) / "gunicorn.log"
    phases = [(m, m == "saturation") for m in args.modes]
    if args.crash:
        phases.append(("crash", False))
    results: dict[str, dict[str, Any]] = {}
    with environment(args, log) as (database_url, base_url, server, postgres_pid):
        run = Run(
            args=args,
            database_url=database_url,
            base_url=base_url,
            server=server,
            postgres_pid=postgres_pid,
        )
        print(
            f"server {base_url}, gunicorn {args.workers} workers x {args.threads} threads, "
            f"log {log}"
        )
        for name, saturate in phases:
            floor = None
            if saturate:
                floor = asyncio.run(
                    floor_run(
                        base_url, concurrency=args.saturation_concurrency, requests=FLOOR_REQUESTS
                    )
                )
            results[name] = run.phase(
                name,
                time_scale=0.0 if saturate else args.time_scale,
                arrival=0.0 if saturate else args.arrival_seconds,
                crash=name == "crash",
                concurrency=args.saturation_concurrency if saturate else None,
            )
            if floor is not None:
                results[name]["floor_healthz"] = floor
                results[name]["requests_vs_floor"] = (
                    round(results[name]["requests_per_s"] / floor["requests_per_s"], 2)
                    if floor["requests_per_s"]
                    else 0
                )
            print_phase(name, results[name])
    server_errors = log.read_text(errors="replace").count("Traceback") if log.exists() else 0
    missed = targets_check(results, args.p99_target_ms, args.ratings_target)
    for line in missed:
        print(f"target missed: {line}")
    summary = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "participants": args.participants,
            "workers": args.workers,
            "threads": args.threads,
            "time_scale": args.time_scale,
            "htmx_share": args.htmx_share,
            "questions": args.questions,
        },
        "server_tracebacks": server_errors,
        "phases": results,
        "targets_met": not missed and not server_errors,
    }
    print(json.dumps(summary, separators=(",", ":")))
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
