"""Load, saturation and crash test of the participant flow: gunicorn + PostgreSQL over HTTP.

Simulated participants go through the whole flow (Prolific link, consent, instructions,
every item and attention check, completion), reading each form's action, CSRF token, step
token and rows from the HTML they are sent. By default every participant's browser runs
JavaScript: items are posted as htmx posts them (``HX-Request`` and ``X-CSRFToken``
headers, to the form's ``hx-post`` URL) and answered with the next item's partial, one
request an item; with ``--htmx-share`` below 1 the rest post the plain form and follow its
redirect to the next full page, two requests an item. Three phases:

* ``burst``: all participants arrive within ``--arrival-seconds`` and think 2–20 s on
  every page, scaled by ``--time-scale``;
* ``saturation``: the same participants with no think time, ``--saturation-concurrency``
  at once, for the maximum rating submissions per second;
* ``crash`` (``--crash``): a burst during which the server is killed with SIGKILL and
  restarted; participants whose requests fail reopen their Prolific link and carry on.

After every phase the database is checked: every acknowledged submission is stored with
the values sent, nothing is stored twice, each participant has ``per_condition`` items from
every condition and no question twice, and exposure within a condition spreads by at most
one. The server runs on loopback only, every phase has a deadline, and the last line printed
is one JSON object with the figures.

The modules, by role:

* ``servers``: the throw-away PostgreSQL, gunicorn in the production configuration, and
  the CPU their processes have used;
* ``client``: the HTTP/1.1 client with keep-alive connections that the participants share;
* ``pages``: reading forms, links and assets from the HTML;
* ``participant``: the simulated participant's walk through the pages;
* ``checks``: the study each phase loads and the check of what the database stored;
* ``phases``: the burst, saturation and crash phases and the ``/healthz`` baseline;
* ``report``: the figures of each phase, the targets and the final JSON line;
* ``cli``: the command line.

Run from the project root, as root or as an ordinary user (PostgreSQL is started as
``nobody`` when run as root)::

    .venv/bin/python benchmarks/load_participants.py --crash
    .venv/bin/python -m benchmarks.load --crash
"""

from __future__ import annotations

from benchmarks.load.checks import CONDITIONS, Ack, study_check, study_create
from benchmarks.load.cli import arguments, main
from benchmarks.load.client import HTTP_ERRORS, ConnectionPool, Response, cookie_parse
from benchmarks.load.pages import Page, page_parse
from benchmarks.load.participant import Participant, RequestFailed, Settings, participants_run
from benchmarks.load.phases import Run, floor_run
from benchmarks.load.report import Recorder, targets_check
from benchmarks.load.servers import (
    Gunicorn,
    Postgres,
    django_setup,
    environment,
    group_cpu,
    group_members,
)

__all__ = [
    "CONDITIONS",
    "HTTP_ERRORS",
    "Ack",
    "ConnectionPool",
    "Gunicorn",
    "Page",
    "Participant",
    "Postgres",
    "Recorder",
    "RequestFailed",
    "Response",
    "Run",
    "Settings",
    "arguments",
    "cookie_parse",
    "django_setup",
    "environment",
    "floor_run",
    "group_cpu",
    "group_members",
    "main",
    "page_parse",
    "participants_run",
    "study_check",
    "study_create",
    "targets_check",
]
