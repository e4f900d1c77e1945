"""Let the "researcher" group manage questionnaires: read them, store new ones and new
versions, and change a version no study with participants uses yet.

Deleting stays with administrators: a study refers to its version, and a version that
participants rated with must outlive any change of mind.
"""

from django.db import migrations

GROUP_NAME = "researcher"
CODENAMES = ("view_questionnaire", "add_questionnaire", "change_questionnaire")


def group_extend(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; create them now so the
    # group can reference them on a fresh database.
    app_config = apps.get_app_config("studyapp")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    permissions = Permission.objects.filter(
        content_type__app_label="studyapp", codename__in=CODENAMES
    )
    missing = set(CODENAMES) - set(permissions.values_list("codename", flat=True))
    if missing:
        raise RuntimeError(f"permissions not found: {', '.join(sorted(missing))}")
    group.permissions.add(*permissions)


def group_shrink(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=GROUP_NAME).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="studyapp", codename__in=CODENAMES)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("studyapp", "0008_study_texts_for_any_questionnaire"),
    ]

    operations = [migrations.RunPython(group_extend, group_shrink)]
