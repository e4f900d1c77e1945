from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config.views import favicon, healthz, home
from studyapp.prolific.hooks import prolific_hook

urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("studyapp.api.urls")),
    # Prolific's webhooks (submission and study status changes), signed with the hook secret.
    path("prolific/hooks/", prolific_hook, name="prolific_hook"),
    path("", include("studyapp.urls")),
]
