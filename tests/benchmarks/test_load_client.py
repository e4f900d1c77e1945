"""The load test's own HTTP/1.1 client and page reader, against a scripted loopback server.

The client decides what counts as an acknowledged rating and whether a request may be
sent twice, so its framing and retry rules are checked here rather than trusted.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from benchmarks.load.client import HTTP_ERRORS, ConnectionPool, cookie_parse
from benchmarks.load.pages import page_parse

# One scripted answer: what the server writes back for the request it has just read, or
# None to close the connection without answering.
Answer = Callable[[str, bytes], bytes | None]


class Server:
    """A loopback server that answers each request with the next function of a script."""

    def __init__(self, script: list[Answer]) -> None:
        self.script = list(script)
        self.requests: list[tuple[int, str, bytes]] = []  # connection number, line, body
        self.heads: list[str] = []  # each request's line and headers
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while self.script:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = 0
                for line in head.split("\r\n")[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                line = head.split("\r\n", 1)[0]
                self.requests.append((number, line, body))
                self.heads.append(head)
                answer = self.script.pop(0)(line, body)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()


def plain(body: bytes, *extra: str) -> Answer:
    head = "".join(f"{h}\r\n" for h in extra)
    return lambda line, sent: (
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body
    )


def hang_up(line: str, body: bytes) -> None:
    return None


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def pool(url: str) -> ConnectionPool:
    return ConnectionPool(url, max_connections=2, keepalive_expiry=2.0, timeout=5.0)


def test_a_response_is_read_by_its_length_and_the_connection_kept() -> None:
    script = [
        plain(b"first", "Set-Cookie: csrftoken=abc; Path=/", "SET-COOKIE: studyapp=x.y:z"),
        plain(b"second"),
    ]

    async def scenario() -> None:
        server = Server(script)
        async with server as url:
            client = pool(url)
            first = await client.request("GET", "/s/one/?a=1")
            second = await client.request("POST", f"{url}/s/two/", data={"v": "é 3"})
            client.close()
        assert (first.status_code, first.text, first.path) == (200, "first", "/s/one/")
        assert first.headers.get_list("set-cookie") == [
            "csrftoken=abc; Path=/",
            "studyapp=x.y:z",
        ]
        assert "content-LENGTH" in first.headers
        assert (second.text, second.path) == ("second", "/s/two/")
        # Both on one keep-alive connection; the form body is URL-encoded.
        assert [r[0] for r in server.requests] == [1, 1]
        assert server.requests[1][1] == "POST /s/two/ HTTP/1.1"
        assert server.requests[1][2] == b"v=%C3%A9+3"

    run(scenario)


def test_a_chunked_and_compressed_response_is_reassembled() -> None:
    packed = gzip.compress("Item 1 of 12 — “Agree”".encode())
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(packed[i : i + 7]), packed[i : i + 7])
        for i in range(0, len(packed), 7)
    )
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + chunks + b"0\r\nX-Trailer: 1\r\n\r\n"
    )

    async def scenario() -> None:
        async with Server([lambda line, body: answer, plain(b"next")]) as url:
            client = pool(url)
            response = await client.request("GET", "/item/")
            after = await client.request("GET", "/item/")
            client.close()
        assert response.text == "Item 1 of 12 — “Agree”"
        assert after.text == "next"  # the framing left the connection at the next answer

    run(scenario)


def test_connection_close_is_honoured() -> None:
    async def scenario() -> None:
        server = Server([plain(b"bye", "Connection: close"), plain(b"again")])
        async with server as url:
            client = pool(url)
            await client.request("GET", "/")
            await client.request("GET", "/")
            client.close()
        assert [r[0] for r in server.requests] == [1, 2]

    run(scenario)


def test_a_get_on_a_connection_closed_unanswered_is_sent_again_once() -> None:
    async def scenario() -> None:
        server = Server([plain(b"one"), hang_up, plain(b"two")])
        async with server as url:
            client = pool(url)
            await client.request("GET", "/")
            response = await client.request("GET", "/item/")
            client.close()
        assert response.text == "two"
        assert [(r[0], r[1]) for r in server.requests[1:]] == [
            (1, "GET /item/ HTTP/1.1"),
            (2, "GET /item/ HTTP/1.1"),
        ]

    run(scenario)


def test_a_post_on_a_connection_closed_unanswered_is_never_sent_twice() -> None:
    async def scenario() -> None:
        server = Server([plain(b"one"), hang_up, plain(b"never")])
        async with server as url:
            client = pool(url)
            await client.request("GET", "/")
            with pytest.raises(HTTP_ERRORS):
                await client.request("POST", "/item/", data={"step": "item-1"})
            client.close()
        posts = [r for r in server.requests if r[1].startswith("POST")]
        assert len(posts) == 1

    run(scenario)


def test_a_refused_connection_is_an_http_error() -> None:
    async def scenario() -> None:
        async with Server([]) as url:
            pass  # closed again: nothing listens on the port any more
        client = pool(url)
        with pytest.raises(HTTP_ERRORS):
            await client.request("GET", "/")

    run(scenario)


def test_a_page_yields_its_forms_with_their_htmx_targets_links_and_assets() -> None:
    page = page_parse(
        '<link rel="stylesheet" href="/static/css/site.css"><script src="/static/h.js"></script>'
        '<form method="post" action="/s/x/item/" hx-post="/s/x/item/">'
        '<input type="hidden" name="csrfmiddlewaretoken" value="t&amp;k">'
        '<input type="hidden" name="step" value="item-3">'
        + "".join(f'<input type="radio" name="clarity" value="{v}">' for v in range(1, 6))
        + '<INPUT TYPE="radio" name="plausibility" value=\'2\'></form>'
        '<a href="/s/x/item/">Start</a>'
    )

    form = page.forms[0]
    assert (form["method"], form["action"], form["hx_post"]) == ("post", "/s/x/item/", "/s/x/item/")
    assert form["hidden"] == {"csrfmiddlewaretoken": "t&k", "step": "item-3"}
    assert form["radios"] == {"clarity": ["1", "2", "3", "4", "5"], "plausibility": ["2"]}
    assert page.links == ["/s/x/item/"]
    assert page.assets == ["/static/css/site.css", "/static/h.js"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("csrftoken=abc; Path=/; SameSite=Lax", [("csrftoken", "abc", False)]),
        ("studyapp=a.b:c; Max-Age=0; Path=/", [("studyapp", "a.b:c", True)]),
        (
            'studyapp=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/',
            [("studyapp", "", True)],
        ),
        ('messages="a\\054b"; Path=/', [("messages", "a,b", False)]),
    ],
)
def test_cookies_are_kept_and_deleted_as_a_browser_does(
    header: str, expected: list[tuple[str, str, bool]]
) -> None:
    assert cookie_parse(header) == expected
