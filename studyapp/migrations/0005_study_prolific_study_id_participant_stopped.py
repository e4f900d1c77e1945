"""The study's Prolific id (links with another STUDY_ID are refused; blank: not checked) and
the "stopped" status of a participant excluded before finishing."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("studyapp", "0004_study_plan_explanation_truncated"),
    ]

    operations = [
        migrations.AddField(
            model_name="study",
            name="prolific_study_id",
            field=models.CharField(
                blank=True,
                help_text="The study's id on Prolific. When set, only links carrying this STUDY_ID are admitted; blank: not checked.",
                max_length=64,
                validators=[
                    django.core.validators.RegexValidator(
                        "\\A[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}\\Z",
                        "The Prolific study id must be 1–64 letters, digits, '-' or '_'.",
                    )
                ],
            ),
        ),
        migrations.AlterField(
            model_name="participant",
            name="status",
            field=models.CharField(
                choices=[
                    ("active", "Active"),
                    ("completed", "Completed"),
                    ("returned", "Returned"),
                    ("timed_out", "Timed out"),
                    ("no_consent", "No consent"),
                    ("stopped", "Stopped by a researcher"),
                ],
                default="active",
                max_length=12,
            ),
        ),
    ]
