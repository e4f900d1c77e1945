"""The load test's simulated participant, its figures and its command line.

The participant walks a scripted loopback server through the study's pages, so what it
sends (htmx posts with their headers, or plain form posts and redirects) and what it
records as acknowledged are checked against the requests the server saw.
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.load.checks import Ack
from benchmarks.load.cli import arguments
from benchmarks.load.participant import Settings, participants_run
from benchmarks.load.report import Recorder, percentile, targets_check

from .test_load_client import Answer, Server

ASSETS = '<link rel="stylesheet" href="/static/site.css"><script src="/static/htmx.js"></script>'
ROWS = ("clarity", "plausibility")


def answer(status: str, body: str = "", *headers: str) -> Answer:
    data = body.encode()
    head = "".join(f"{h}\r\n" for h in headers)
    return lambda line, sent: (
        (
            f"HTTP/1.1 {status}\r\nContent-Length: {len(data)}\r\n"
            f"Content-Type: text/html; charset=utf-8\r\n{head}\r\n"
        ).encode()
        + data
    )


def redirect(location: str, *headers: str) -> Answer:
    return answer("302 Found", "", f"Location: {location}", *headers)


def item_form(step: str, text: str = "") -> str:
    radios = "".join(
        f'<input type="radio" name="{row}" value="{v}">' for row in ROWS for v in range(1, 6)
    )
    return (
        '<form method="post" action="/s/x/item/" hx-post="/s/x/item/">'
        '<input type="hidden" name="csrfmiddlewaretoken" value="tok">'
        f'<input type="hidden" name="step" value="{step}">{text}{radios}</form>'
    )


CHECK = "Attention check: please choose “Agree” on every row."


def opening() -> list[Answer]:
    """The Prolific link, consent with the page's assets, and the instructions."""
    return [
        redirect("/s/x/consent/", "Set-Cookie: studyapp=signed:1; Path=/; Secure"),
        answer(
            "200 OK",
            ASSETS + '<form method="post" action="/s/x/consent/">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="tok"></form>',
            "Set-Cookie: csrftoken=tok; Path=/; Secure",
        ),
        answer("200 OK", "body{}"),
        answer("200 OK", "htmx"),
        redirect("/s/x/instructions/"),
        answer("200 OK", ASSETS + '<a href="/s/x/item/">Start</a>'),
    ]


def walk(server: Server, *, htmx_share: float) -> tuple[Recorder, int]:
    recorder = Recorder()

    async def scenario() -> int:
        async with server as url:
            settings = Settings(
                base_url=url,
                slug="x",
                time_scale=0.0,
                behind_proxy=False,
                recover=False,
                htmx_share=htmx_share,
            )
            _, finished = await participants_run(
                settings=settings,
                recorder=recorder,
                pids=["p1"],
                arrival_seconds=0.0,
                deadline_seconds=10.0,
            )
        return finished

    return recorder, asyncio.run(scenario())


def test_a_participant_with_javascript_posts_items_as_htmx_and_reads_the_partials() -> None:
    server = Server(
        [
            *opening(),
            answer("200 OK", ASSETS + item_form("item-1")),
            answer("200 OK", item_form("check-1", CHECK)),  # the next step's partial
            answer("200 OK", "", "HX-Redirect: /s/x/done/"),
            answer("200 OK", ASSETS + "Thank you"),
        ]
    )

    recorder, finished = walk(server, htmx_share=1.0)

    assert finished == 1
    assert recorder.errors == {}
    lines = [r[1].split("?")[0] for r in server.requests]
    assert lines == [
        "GET /s/x/",
        "GET /s/x/consent/ HTTP/1.1",
        "GET /static/site.css HTTP/1.1",  # each asset once, though both pages link them
        "GET /static/htmx.js HTTP/1.1",
        "POST /s/x/consent/ HTTP/1.1",
        "GET /s/x/instructions/ HTTP/1.1",
        "GET /s/x/item/ HTTP/1.1",
        "POST /s/x/item/ HTTP/1.1",
        "POST /s/x/item/ HTTP/1.1",
        "GET /s/x/done/ HTTP/1.1",
    ]
    for head in (server.heads[7], server.heads[8]):
        assert "HX-Request: true\r\n" in head
        assert "X-CSRFToken: tok\r\n" in head
        # Secure cookies are sent back over loopback http, as behind the TLS proxy.
        assert "Cookie: studyapp=signed:1; csrftoken=tok\r\n" in head
    assert "HX-Request" not in server.heads[4]  # consent is a plain form post
    item, check = recorder.acks
    assert item.token == "item-1"
    assert set(item.values) == set(ROWS)
    assert all(1 <= v <= 5 for v in item.values.values())
    assert check == Ack("p1", "check-1", {"clarity": 4, "plausibility": 4})
    assert server.requests[8][2] == b"csrfmiddlewaretoken=tok&step=check-1&clarity=4&plausibility=4"
    assert (len(recorder.rating_times), len(recorder.submission_times)) == (1, 2)
    assert recorder.requests == 10
    assert sorted(recorder.latencies) == [
        "consent GET",
        "consent POST",
        "done GET",
        "entry GET",
        "instructions GET",
        "item GET",
        "item POST htmx",
        "static GET",
    ]


def test_a_participant_without_javascript_posts_the_form_and_follows_the_redirect() -> None:
    server = Server(
        [
            *opening(),
            answer("200 OK", ASSETS + item_form("item-1")),
            redirect("/s/x/item/"),
            answer("200 OK", ASSETS + item_form("check-1", CHECK)),
            redirect("/s/x/done/"),
            answer("200 OK", ASSETS + "Thank you"),
        ]
    )

    recorder, finished = walk(server, htmx_share=0.0)

    assert finished == 1
    assert recorder.errors == {}
    assert [r[1] for r in server.requests[6:]] == [
        "GET /s/x/item/ HTTP/1.1",
        "POST /s/x/item/ HTTP/1.1",
        "GET /s/x/item/ HTTP/1.1",
        "POST /s/x/item/ HTTP/1.1",
        "GET /s/x/done/ HTTP/1.1",
    ]
    assert not any("HX-Request" in head for head in server.heads)
    assert [ack.token for ack in recorder.acks] == ["item-1", "check-1"]
    assert (len(recorder.latencies["item GET"]), len(recorder.latencies["item POST"])) == (2, 2)
    assert "item POST htmx" not in recorder.latencies


def test_a_refused_submission_is_an_error_and_not_acknowledged() -> None:
    server = Server(
        [*opening(), answer("200 OK", item_form("item-1")), answer("403 Forbidden", "no")]
    )

    recorder, finished = walk(server, htmx_share=1.0)

    assert finished == 0
    assert recorder.errors == {"item POST htmx: HTTP 403": 1}
    assert recorder.acks == []


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0


def _phase(**database: int) -> dict[str, object]:
    db = dict.fromkeys(
        (
            "lost",
            "duplicated_ratings",
            "partially_stored_items",
            "not_completed",
            "unbalanced_participants",
            "question_twice_participants",
            "exposure_spread_max",
        ),
        0,
    )
    db.update(database)
    return {
        "database": db,
        "errors": 0,
        "pages": {"item POST htmx": {"p99_ms": 20.0}},
        "ratings_per_s": 150.0,
    }


def test_targets_name_each_miss() -> None:
    burst = _phase(lost=2, exposure_spread_max=2)
    burst["pages"] = {"consent POST": {"p99_ms": 151.0}, "item GET": {"p99_ms": 12.0}}
    results = {"burst": burst, "saturation": _phase()}

    assert targets_check(results, 150.0, 300.0) == [
        "burst: lost = 2",
        "burst: exposure spread 2 > 1",
        "burst: consent POST p99 151.0 ms >= 150.0 ms",
        "saturation: 150.0 ratings/s < 300.0",
    ]
    assert targets_check({"burst": _phase(exposure_spread_max=1)}, 150.0, 300.0) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--modes", "burst,soak"],
            "--modes: unknown mode(s) ['soak']; use burst and/or saturation",
        ),
        (["--htmx-share", "1.5"], "--htmx-share must be between 0 and 1"),
        (["--questions", "5"], "--questions must be at least 12"),
        (["--target-url", "http://10.0.0.1:8000"], "--target-url must be on loopback"),
        (["--database-url", "sqlite:///x"], "--database-url must be a postgres:// URL"),
    ],
)
def test_bad_arguments_are_refused_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        arguments(argv, prog="load")

    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_the_documented_defaults_hold() -> None:
    args = arguments([])

    assert args.modes == ["burst", "saturation"]
    assert (args.participants, args.questions, args.htmx_share) == (200, 150, 1.0)
    assert (args.workers, args.threads, args.saturation_concurrency) == (3, 2, 24)
