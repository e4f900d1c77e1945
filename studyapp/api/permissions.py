"""Who may use the API and how often: staff accounts only, throttled per user and per address."""

from __future__ import annotations

from rest_framework.permissions import IsAdminUser
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class IsResearcher(IsAdminUser):
    """Staff accounts only (session or token); participants and anonymous callers are refused."""

    message = "Only staff (researcher) accounts may use this API."


class ResearcherRateThrottle(UserRateThrottle):
    """Per-account limit (``DEFAULT_THROTTLE_RATES['user']``)."""


class AnonymousRateThrottle(AnonRateThrottle):
    """Per-address limit for unauthenticated calls, which slows down token guessing."""


RESEARCHER_PERMISSIONS = [IsResearcher]
RESEARCHER_THROTTLES = [ResearcherRateThrottle, AnonymousRateThrottle]
