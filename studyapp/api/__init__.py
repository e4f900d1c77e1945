"""The researchers' REST API: studies, progress, participants and ratings (staff only)."""
