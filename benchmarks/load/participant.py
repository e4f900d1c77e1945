"""The simulated participant: one person's walk through the study, page by page.

A participant opens the Prolific link, agrees on the consent page, reads the instructions,
rates every item and answers every attention check, and ends on the completion page. It
reads each page it is sent (``pages.page_parse``) and acts on what the page offers: the
form's action, CSRF token and step token, the radio rows to answer (every row it is shown,
whatever the rows are called), and the instruction of an attention check from its text. It
keeps its own cookies and loads each stylesheet and script once, as a browser's cache does.

A share of the participants (``Settings.htmx_share``, all of them by default) have a browser
that runs JavaScript. They post each item the way htmx does: to the form's ``hx-post`` URL,
with ``HX-Request: true`` and the CSRF token in ``X-CSRFToken``; the server answers with the
next item's partial (or an ``HX-Redirect`` to the completion page), so an item costs one
request. The others post the plain form to its ``action`` and follow the redirect to the
next full page: two requests an item. The entry, consent, instructions and completion pages
are full pages for everyone.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from benchmarks.load.checks import Ack
from benchmarks.load.client import HTTP_ERRORS, ConnectionPool, Response, cookie_parse
from benchmarks.load.pages import Page, page_parse
from benchmarks.load.report import Recorder
from benchmarks.load.servers import PROXY_HEADERS

LIKERT_BY_LABEL = {
    "Strongly disagree": 1,
    "Disagree": 2,
    "Neither agree nor disagree": 3,
    "Agree": 4,
    "Strongly agree": 5,
}
INSTRUCTION = re.compile(r"please choose “([^”]+)”")


class RequestFailed(Exception):
    pass


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
