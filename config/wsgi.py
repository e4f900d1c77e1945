"""WSGI entry point for gunicorn."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application
from django.urls import resolve

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Import every view now, while the worker boots, rather than in its first request: that
# request would otherwise wait for the URL conf and everything the views import (about
# 0.6 s), and the first requests of a study's launch are the arrivals of its participants.
resolve("/")
