from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from studyapp.api import views

app_name = "api"

urlpatterns = [
    path("studies/", views.StudyListCreateView.as_view(), name="study-list"),
    path("studies/<slug:slug>/", views.StudyDetailView.as_view(), name="study-detail"),
    path("studies/<slug:slug>/status/", views.StudyStatusView.as_view(), name="study-status"),
    path("studies/<slug:slug>/plan/", views.StudyPlanView.as_view(), name="study-plan"),
    path("studies/<slug:slug>/progress/", views.StudyProgressView.as_view(), name="study-progress"),
    path(
        "studies/<slug:slug>/participants/",
        views.StudyParticipantsView.as_view(),
        name="study-participants",
    ),
    path("studies/<slug:slug>/ratings/", views.StudyRatingsView.as_view(), name="study-ratings"),
    path(
        "studies/<slug:slug>/ratings.csv",
        views.StudyRatingsCSVView.as_view(),
        name="study-ratings-csv",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI only: drf-spectacular's Redoc page loads its fonts from Google. The split
    # view serves Swagger UI's settings as a script file, so the page needs no inline script.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", template_name="api/swagger_ui.html"
        ),
        name="docs",
    ),
]
