"""A study's registered analysis plan, frozen when it goes live; explanations cut at the cap.

Studies that were already open to participants count as having gone live: their plan (none)
is frozen from their first participant's start, or from now if nobody has started yet, so
that no plan can be registered for them after data collection began.
"""

from django.db import migrations, models
from django.db.models import Min, Q
from django.utils import timezone


def plans_freeze_opened(apps, schema_editor):
    Study = apps.get_model("studyapp", "Study")
    opened = Study.objects.annotate(first_start=Min("participants__started_at")).filter(
        Q(status__in=("live", "paused")) | Q(first_start__isnull=False)
    )
    now = timezone.now()
    for study in opened:
        study.plan_frozen_at = study.first_start or now
        study.save(update_fields=["plan_frozen_at"])


class Migration(migrations.Migration):
    dependencies = [
        ("studyapp", "0003_researcher_group"),
    ]

    operations = [
        migrations.AddField(
            model_name="explanation",
            name="truncated",
            field=models.BooleanField(
                default=False,
                help_text="The student's output hit the generation cap: the text may be cut short.",
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="plan_frozen_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="When the study first went live; from then on its plan cannot change.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="plan_name",
            field=models.CharField(
                blank=True, help_text="Name of the registered analysis plan.", max_length=200
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="plan_sha256",
            field=models.CharField(
                blank=True, help_text="SHA-256 of the plan text (UTF-8), in hex.", max_length=64
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="plan_text",
            field=models.TextField(blank=True, help_text="The registered plan's TOML text."),
        ),
        migrations.RunPython(plans_freeze_opened, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="study",
            constraint=models.CheckConstraint(
                condition=models.Q(("plan_name", ""), ("plan_sha256", ""), ("plan_text", ""))
                | models.Q(
                    models.Q(("plan_name", ""), _negated=True),
                    models.Q(("plan_text", ""), _negated=True),
                    models.Q(("plan_sha256", ""), _negated=True),
                ),
                name="study_plan_whole",
            ),
        ),
        migrations.AddConstraint(
            model_name="study",
            constraint=models.CheckConstraint(
                condition=models.Q(models.Q(("status", "live"), _negated=True))
                | models.Q(("plan_frozen_at__isnull", False)),
                name="study_live_plan_frozen",
            ),
        ),
    ]
