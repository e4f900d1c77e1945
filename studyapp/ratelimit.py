"""Counting requests per client in the shared cache: new participants per address, failed
API logins per client.

Counts live in Django's default cache, which every worker process shares when it is the
database cache or Redis (see ``CACHES`` in the settings). A client is never stored as such:
the cache key holds a keyed hash (HMAC with the secret key) of its address or token prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest

RATE_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}


@dataclass(frozen=True)
class Rate:
    """At most ``count`` events in ``seconds``."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"20/hour"`` (REST framework's format: the period's first letter counts).

        Examples
        --------
        >>> Rate.parse("20/hour")
        Rate(count=20, seconds=3600)
        """
        count, _, period = text.partition("/")
        if not (count.isdigit() and period[:1].lower() in RATE_PERIOD_SECONDS):
            raise ValueError(
                f"{text!r} is not a rate; use COUNT/PERIOD with PERIOD one of: "
                "second, minute, hour, day"
            )
        return cls(int(count), RATE_PERIOD_SECONDS[period[0].lower()])


def client_address(request: HttpRequest) -> str:
    """The client's address as the deployment's proxies report it.

    ``TRUSTED_PROXY_COUNT`` says how many proxies in front of the app append to
    ``X-Forwarded-For``. Each appends the address it received the request from, so the
    client is the entry that many places from the right; everything further left was sent
    by the client and may be forged. With no trusted proxy the header is ignored.
    """
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    remote = str(request.META.get("REMOTE_ADDR") or "")
    if proxies <= 0:
        return remote
    forwarded = [
        part.strip() for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
    ]
    forwarded = [part for part in forwarded if part]
    if not forwarded:
        return remote
    return forwarded[-min(proxies, len(forwarded))]


class WindowCounter:
    """Events per client in fixed windows of the rate's period, kept in the shared cache.

    A fixed window lets a client reach twice the count across a window boundary at worst;
    in exchange a check is one cache read and a hit one atomic increment.
    """

    # The clock that places events in windows (tests pin it to stay inside one window).
    clock = staticmethod(time.time)

    def __init__(self, scope: str, rate: Rate, *, cache_alias: str = "default") -> None:
        self.scope = scope
        self.rate = rate
        self.cache = caches[cache_alias]

    def _window(self) -> int:
        return int(self.clock() // self.rate.seconds)

    def _key(self, ident: str) -> str:
        digest = hmac.new(
            str(settings.SECRET_KEY).encode(), f"{self.scope}\0{ident}".encode(), hashlib.sha256
        ).hexdigest()[:32]
        return f"ratelimit:{self.scope}:{self._window()}:{digest}"

    def count(self, ident: str) -> int:
        return int(self.cache.get(self._key(ident), 0))

    def exceeded(self, ident: str) -> bool:
        return self.count(ident) >= self.rate.count

    def hit(self, ident: str) -> int:
        """Count one event; return the count in this window, this one included."""
        key = self._key(ident)
        # add() is a no-op when the key exists, so concurrent first hits do not reset it.
        self.cache.add(key, 0, timeout=self.rate.seconds)
        try:
            return int(self.cache.incr(key))
        except ValueError:  # evicted between add and incr
            self.cache.set(key, 1, timeout=self.rate.seconds)
            return 1

    def retry_after(self) -> int:
        """Seconds until the current window ends."""
        return max(1, self.rate.seconds - int(self.clock()) % self.rate.seconds)


def participant_start_counter() -> WindowCounter:
    """New participants per client address (``PARTICIPANT_START_RATE``)."""
    return WindowCounter("participant-start", Rate.parse(settings.PARTICIPANT_START_RATE))
