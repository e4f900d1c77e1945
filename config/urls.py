from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config.views import favicon, healthz, home

urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("studyapp.api.urls")),
    path("", include("studyapp.urls")),
]
