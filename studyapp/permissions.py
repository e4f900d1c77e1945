"""Which Django model permissions each researcher operation needs: one table for the admin
and the API.

The admin's own pages check the same model permissions through ``ModelAdmin``
(``has_view_permission`` and the like); the admin's extra pages, its actions and every API
endpoint read their rule from here, so a staff account can do through its API token exactly
what it can do in the admin. The "researcher" group (migration 0003) holds all of them.
"""

from __future__ import annotations

from typing import Any

STUDY_VIEW = ("studyapp.view_study",)
STUDY_ADD = ("studyapp.add_study",)
STUDY_CHANGE = ("studyapp.change_study",)
PARTICIPANTS_VIEW = ("studyapp.view_study", "studyapp.view_participant")
PARTICIPANTS_CHANGE = ("studyapp.view_study", "studyapp.change_participant")
# What participants answered, with their pseudonyms and covariates.
RATINGS_VIEW = ("studyapp.view_study", "studyapp.view_participant", "studyapp.view_rating")
# Questionnaires. Storing a document adds a questionnaire or a version, or changes the latest
# version while no study with participants uses it, so it needs both permissions.
QUESTIONNAIRE_VIEW = ("studyapp.view_questionnaire",)
QUESTIONNAIRE_STORE = (
    "studyapp.view_questionnaire",
    "studyapp.add_questionnaire",
    "studyapp.change_questionnaire",
)


def user_may(user: Any, permissions: tuple[str, ...]) -> bool:
    """An active staff account holding every one of ``permissions``."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perms(permissions)
    )
