"""Create the "researcher" group with the model permissions needed to run a study from the admin.

Membership alone does not open the admin: a researcher also needs ``is_staff``.
"""

from django.db import migrations

GROUP_NAME = "researcher"

# (model, actions): what a researcher may do. Ratings and items stay read-only so that
# what participants answered can never be edited by hand; participants can be changed
# (exclusion, status) but not created or deleted.
PERMISSIONS = {
    "study": ("view", "add", "change"),
    "condition": ("view", "add", "change"),
    "question": ("view",),
    "explanation": ("view",),
    "participant": ("view", "change"),
    "assignment": ("view",),
    "rating": ("view",),
    "attentioncheckresponse": ("view",),
    "participantexclusion": ("view", "add"),
    "participantdemographics": ("view", "add", "change"),
    "studyreport": ("view", "add"),
}


def group_create(apps, schema_editor):
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
    codenames = [
        f"{action}_{model}" for model, actions in PERMISSIONS.items() for action in actions
    ]
    permissions = Permission.objects.filter(
        content_type__app_label="studyapp", codename__in=codenames
    )
    missing = set(codenames) - set(permissions.values_list("codename", flat=True))
    if missing:
        raise RuntimeError(f"permissions not found: {', '.join(sorted(missing))}")
    group.permissions.add(*permissions)


def group_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("studyapp", "0002_researcher_audit_demographics_reports"),
    ]

    operations = [migrations.RunPython(group_create, group_delete)]
