from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from studyapp.api import views
from studyapp.api.reference import ApiReferenceView

app_name = "api"

urlpatterns = [
    path("studies/", views.StudyListCreateView.as_view(), name="study-list"),
    path("studies/<slug:slug>/", views.StudyDetailView.as_view(), name="study-detail"),
    path("studies/<slug:slug>/status/", views.StudyStatusView.as_view(), name="study-status"),
    path("studies/<slug:slug>/plan/", views.StudyPlanView.as_view(), name="study-plan"),
    path(
        "studies/<slug:slug>/questionnaire/",
        views.StudyQuestionnaireView.as_view(),
        name="study-questionnaire",
    ),
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
    path("questionnaires/", views.QuestionnaireListView.as_view(), name="questionnaire-list"),
    # <slug> here is the questionnaire's name (a slug too); ?version=N picks a version.
    path(
        "questionnaires/<slug:slug>/",
        views.QuestionnaireDetailView.as_view(),
        name="questionnaire-detail",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The reference page is rendered on the server from the same schema: no script, so it
    # works with JavaScript off and under the site's Content-Security-Policy.
    path("docs/", ApiReferenceView.as_view(), name="docs"),
]
