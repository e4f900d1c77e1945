"""Let the "researcher" group read the Prolific records: the requests sent to Prolific (with
who sent them) and Prolific's status of each submission. Both are written by the platform
only; nobody adds, changes or deletes them in the admin."""

from django.db import migrations

GROUP_NAME = "researcher"
CODENAMES = ("view_prolificaction", "view_prolificsubmission")


def _permissions(apps):
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("studyapp")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.filter(content_type__app_label="studyapp", codename__in=CODENAMES)


def group_extend(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    permissions = _permissions(apps)
    if permissions.count() != len(CODENAMES):
        raise RuntimeError(f"permissions not found among: {', '.join(CODENAMES)}")
    group.permissions.add(*permissions)


def group_shrink(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    group = Group.objects.filter(name=GROUP_NAME).first()
    if group is not None:
        group.permissions.remove(*_permissions(apps))


class Migration(migrations.Migration):
    dependencies = [
        ("studyapp", "0011_prolific"),
    ]

    operations = [migrations.RunPython(group_extend, group_shrink)]
