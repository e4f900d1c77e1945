"""The researcher's admin: studies (upload, status, dashboard), the item pool, participants
and audit records."""

from studyapp.admin import participants, pool, questionnaires, records, studies

__all__ = ["participants", "pool", "questionnaires", "records", "studies"]
