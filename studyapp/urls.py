from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from studyapp.participation import views

app_name = "studyapp"

urlpatterns: list[URLPattern | URLResolver] = [
    path("s/<slug:slug>/", views.entry, name="entry"),
    path("s/<slug:slug>/consent/", views.consent, name="consent"),
    path("s/<slug:slug>/instructions/", views.instructions, name="instructions"),
    path("s/<slug:slug>/item/", views.step, name="step"),
    path("s/<slug:slug>/done/", views.done, name="done"),
    path("s/<slug:slug>/ended/", views.ended, name="ended"),
]
