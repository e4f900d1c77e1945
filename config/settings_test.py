"""Fast settings for the test suite: cheap password hashing, no throttling surprises."""

from __future__ import annotations

from config.settings import *  # noqa: F403
from config.settings import REST_FRAMEWORK

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        "user": "100000/minute",
        "anon": "100000/minute",
        "failed_auth": "100000/minute",
    },
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
# Tests admit many participants from one address; the limit itself is tested with its own rate.
PARTICIPANT_START_RATE = "100000/minute"
