"""Who may use the API and how often: staff accounts with the admin's model permissions,
throttled per account and address."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework.authentication import get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from studyapp.permissions import STUDY_VIEW, user_may
from studyapp.ratelimit import Rate, WindowCounter, client_address

READ_METHODS = ("GET", "HEAD", "OPTIONS")


class IsResearcher(BasePermission):
    """Staff accounts holding the model permissions the view names for the request's method.

    Each view lists its rule in ``required_permissions`` ({method: permissions}, from
    ``studyapp.permissions``, the table the admin uses too); HEAD and OPTIONS follow GET.
    A method the view does not list passes here, and the view then answers 405.
    """

    message = (
        "Only staff (researcher) accounts with the permission for this action may use it; "
        "ask an administrator to add the account to the 'researcher' group."
    )

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        rules: Mapping[str, tuple[str, ...]] = getattr(view, "required_permissions", {})
        method = "GET" if request.method in READ_METHODS else str(request.method)
        if method not in rules:
            return method not in view.allowed_methods
        return user_may(user, rules[method])


class MayViewStudies(BasePermission):
    """The API's schema and docs: staff who may view studies (they describe what those see)."""

    message = IsResearcher.message

    def has_permission(self, request: Request, view: APIView) -> bool:
        return user_may(request.user, STUDY_VIEW)


class ResearcherRateThrottle(UserRateThrottle):
    """Per-account limit on calls (``DEFAULT_THROTTLE_RATES['user']``)."""


class FailedAuthenticationThrottle:
    """Refused logins per client and per token prefix, kept in the shared cache.

    A refused call (no credentials, or a token or session that does not authenticate)
    counts against the client's address as the deployment's trusted proxies report it
    (``TRUSTED_PROXY_COUNT``: a forged ``X-Forwarded-For`` changes nothing) and against
    the first characters of the token it sent. Past the rate (``failed_auth`` in
    ``DEFAULT_THROTTLE_RATES``), refused calls get 429 instead of 401.

    Only refused calls are ever throttled: a call whose token or session authenticates
    is served whatever others sent from the same address, so researchers behind one
    proxy never lock each other out. The counts live in the default cache (the database
    or Redis), which all workers share.
    """

    scope = "failed_auth"
    TOKEN_PREFIX_LENGTH = 8

    def __init__(self) -> None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        self.counter = WindowCounter("api-failed-auth", Rate.parse(str(rate))) if rate else None

    def _idents(self, request: Request) -> list[str]:
        idents = [f"client:{client_address(request)}"]
        words = get_authorization_header(request).split()
        if len(words) == 2 and words[0].lower() == b"token":
            prefix = words[1][: self.TOKEN_PREFIX_LENGTH].decode("latin-1")
            idents.append(f"token:{prefix}")
        return idents

    def failure_record(self, request: Request) -> float | None:
        """Count one refused call; the seconds to wait when it is past the rate, else None."""
        if self.counter is None:
            return None
        counts = [self.counter.hit(ident) for ident in self._idents(request)]
        if max(counts) > self.counter.rate.count:
            return float(self.counter.retry_after())
        return None


RESEARCHER_PERMISSIONS = [IsResearcher]
RESEARCHER_THROTTLES = [ResearcherRateThrottle]
