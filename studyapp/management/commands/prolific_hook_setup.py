"""Subscribe this site to Prolific's status-change webhooks for a workspace."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyapp.prolific.client import ProlificClient, ProlificError
from studyapp.prolific.hooks import STUDY_EVENT, SUBMISSION_EVENT

SECRETS_PATH = "api/v1/hooks/secrets/"
SUBSCRIPTIONS_PATH = "api/v1/hooks/subscriptions/"


def _secret_value(data: Any) -> str:
    value = data.get("value") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise CommandError(f"Prolific's answer holds no secret: {data!r}")
    return value


class Command(BaseCommand):
    help = (
        "Subscribe TARGET_URL (this site's /prolific/hooks/ address, reachable from the "
        "internet over https) to Prolific's submission and study status changes in workspace "
        "WORKSPACE_ID, confirm the subscriptions, and print the hook secret to set as "
        "PROLIFIC_HOOK_SECRET."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workspace_id", help="the Prolific workspace the studies are in")
        parser.add_argument(
            "target_url", help="for example https://study.example.org/prolific/hooks/"
        )
        parser.add_argument(
            "--new-secret",
            action="store_true",
            help="make a new hook secret first; it replaces the workspace's secret, so every "
            "other receiver of the workspace's hooks must be given the new one",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = options["workspace_id"]
        target = options["target_url"]
        parts = urlsplit(target)
        if parts.scheme != "https" or not parts.netloc:
            raise CommandError(
                f"'{target}' is not an https address; Prolific delivers hooks only to public "
                "https addresses"
            )
        try:
            with ProlificClient.from_settings() as client:
                secret = self._secret(client, workspace, new=options["new_secret"])
                for event in (SUBMISSION_EVENT, STUDY_EVENT):
                    subscription = self._subscribe(client, workspace, event, target)
                    self.stdout.write(f"Subscribed {target} to {event} ({subscription}).")
        except ProlificError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Set this in the server's environment and restart it:\nPROLIFIC_HOOK_SECRET={secret}"
        )

    def _secret(self, client: ProlificClient, workspace: str, *, new: bool) -> str:
        if new:
            response = client.request("POST", SECRETS_PATH, body={"workspace_id": workspace})
            return _secret_value(response.json())
        response = client.request("GET", SECRETS_PATH, params={"workspace_id": workspace})
        results = response.json().get("results") or []
        if not results:
            raise CommandError(
                f"workspace {workspace} has no hook secret yet; run again with --new-secret"
            )
        return _secret_value(results[0])

    def _subscribe(self, client: ProlificClient, workspace: str, event: str, target: str) -> str:
        response = client.request(
            "POST",
            SUBSCRIPTIONS_PATH,
            body={
                "workspace_id": workspace,
                "event_type": event,
                "target_url": target,
                "is_enabled": True,
            },
        )
        data = response.json()
        subscription = data.get("id") if isinstance(data, dict) else None
        confirm = response.headers.get("X-Hook-Secret", "")
        if not isinstance(subscription, str) or not subscription.isalnum() or not confirm:
            raise CommandError(
                f"Prolific's answer to the subscription lacks its id or X-Hook-Secret: {data!r}"
            )
        # Prolific activates a subscription once the secret it sent is posted back.
        client.request("POST", f"{SUBSCRIPTIONS_PATH}{subscription}/", body={"secret": confirm})
        return str(subscription)
