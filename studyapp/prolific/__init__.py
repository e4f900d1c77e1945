"""Driving Prolific from the platform: its API client, webhooks, status sync, review, bonuses.

``client`` speaks Prolific's REST API (v1); ``services`` holds what the admin, the webhook
and ``prolific_sync`` do with it, each action recorded in ``ProlificAction``; ``hooks`` is the
webhook endpoint. Nothing here costs money without a confirmed second step.
"""
