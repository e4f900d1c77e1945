"""The researcher's admin: studies (upload, status, dashboard), participants and audit records."""

from studyapp.admin import participants, records, studies

__all__ = ["participants", "records", "studies"]
