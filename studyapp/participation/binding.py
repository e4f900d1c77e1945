"""Which participant this browser is, per study: a signed cookie instead of a session.

Every participant page would otherwise read (and often write) a session row before doing
its own work. The signature (HMAC with the secret key) makes the cookie as tamper-proof as
a session key: a forged, altered or expired cookie binds nobody.

A view reads the cookie once with ``bindings_read``, looks up or changes the binding of its
study, and hands the response to ``bindings_store``, which sets the cookie only when a
binding changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

PARTICIPANT_COOKIE = "studyapp"
PARTICIPANT_COOKIE_SALT = "studyapp.participant-binding"
PARTICIPANT_COOKIE_STUDIES = 8  # studies remembered per browser, the most recent kept


@dataclass(frozen=True)
class Binding:
    """What a browser knows about its participant in one study.

    ``participant`` is the participant's id once they consented or declined (None before);
    the Prolific ids come from the link the browser arrived with.
    """

    pid: str
    study_id: str = ""
    session_id: str = ""
    participant: int | None = None

    @classmethod
    def parse(cls, value: Any) -> Binding | None:
        """The binding a cookie entry describes, or None for an entry of the wrong shape.

        Examples
        --------
        >>> Binding.parse({"pid": "p1", "participant": 3})
        Binding(pid='p1', study_id='', session_id='', participant=3)
        >>> Binding.parse({"pid": 7}) is None, Binding.parse("p1") is None
        (True, True)
        """
        if not isinstance(value, dict) or not isinstance(value.get("pid"), str):
            return None
        texts = [value.get(key, "") for key in ("study_id", "session_id")]
        participant = value.get("participant")
        if not all(isinstance(text, str) for text in texts):
            return None
        if participant is not None and (
            not isinstance(participant, int) or isinstance(participant, bool)
        ):
            return None
        return cls(value["pid"], texts[0], texts[1], participant)


class Bindings:
    """Every study this browser takes part in, in the order last used (the latest last)."""

    def __init__(self, bindings: dict[str, Binding]) -> None:
        self._bindings = bindings
        self.changed = False

    def get(self, slug: str) -> Binding | None:
        return self._bindings.get(slug)

    def bind(self, slug: str, *, pid: str | None = None, **values: Any) -> Binding:
        """Record ``values`` for the study ``slug``; a new Prolific ID starts afresh."""
        previous = self._bindings.pop(slug, None)
        if previous is None or (pid is not None and pid != previous.pid):
            # A different Prolific ID in this browser: nothing of the previous participant
            # (their items, their place) stays reachable.
            if pid is None:
                raise ValueError("a new binding needs the participant's Prolific ID")
            binding = Binding(pid=pid, **values)
        else:
            binding = replace(previous, **values)
        self._bindings[slug] = binding  # last, as the most recent
        while len(self._bindings) > PARTICIPANT_COOKIE_STUDIES:
            self._bindings.pop(next(iter(self._bindings)))
        self.changed = True
        return binding

    def cookie_value(self) -> str:
        plain = {slug: asdict(binding) for slug, binding in self._bindings.items()}
        return signing.dumps(plain, salt=PARTICIPANT_COOKIE_SALT, compress=True)


def bindings_read(request: HttpRequest) -> Bindings:
    """The bindings in the request's cookie; a missing, forged or expired cookie has none."""
    try:
        value = signing.loads(
            request.COOKIES.get(PARTICIPANT_COOKIE, ""),
            salt=PARTICIPANT_COOKIE_SALT,
            max_age=settings.SESSION_COOKIE_AGE,
        )
    except signing.BadSignature:  # also a missing, expired or garbled cookie
        value = {}
    found: dict[str, Binding] = {}
    for slug, entry in value.items() if isinstance(value, dict) else ():
        binding = Binding.parse(entry)
        if isinstance(slug, str) and binding is not None:
            found[slug] = binding
    return Bindings(found)


def bindings_store(bindings: Bindings, response: HttpResponse) -> HttpResponse:
    """Set the cookie on ``response`` when a binding changed while answering the request."""
    if bindings.changed:
        response.set_cookie(
            PARTICIPANT_COOKIE,
            bindings.cookie_value(),
            max_age=settings.SESSION_COOKIE_AGE,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",  # sent when Prolific links here, never on cross-site POSTs
        )
    return response
