"""Who may use the API and how often: staff accounts only, throttled per account and address."""

from __future__ import annotations

from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle


class IsResearcher(IsAdminUser):
    """Staff accounts only (session or token); participants and anonymous callers are refused."""

    message = "Only staff (researcher) accounts may use this API."


class ResearcherRateThrottle(UserRateThrottle):
    """Per-account limit on calls (``DEFAULT_THROTTLE_RATES['user']``)."""


class FailedAuthenticationThrottle(SimpleRateThrottle):
    """Per-address limit on refused logins (``DEFAULT_THROTTLE_RATES['anon']``).

    DRF checks throttles only after authentication and permissions pass, so a caller
    guessing tokens would never be throttled. This one is checked before authentication
    and counts only the calls that failed it, so researchers' own calls never use it up.
    """

    scope = "anon"
    # Set by SimpleRateThrottle.__init__ from the rate; declared for the type checker.
    num_requests: int
    duration: int

    def get_cache_key(self, request: Request, view: object) -> str:
        return self.cache_format % {"scope": "failed-auth", "ident": self.get_ident(request)}

    def _history(self, request: Request) -> list[float]:
        self.key = self.get_cache_key(request, None)
        self.now = self.timer()
        return [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]

    def is_blocked(self, request: Request) -> bool:
        if self.rate is None:
            return False
        self.history = self._history(request)
        return len(self.history) >= self.num_requests

    def failure_record(self, request: Request) -> None:
        if self.rate is None:
            return
        history = self._history(request)
        self.cache.set(self.key, [self.now, *history], self.duration)


RESEARCHER_PERMISSIONS = [IsResearcher]
RESEARCHER_THROTTLES = [ResearcherRateThrottle]
