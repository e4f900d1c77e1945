"""The database cache's table (settings.CACHES), so that ``migrate`` alone readies a database.

Rate limits and lockouts are counted in the cache, which every worker process must share;
without Redis that is this table. ``createcachetable`` creates it only where it is missing.
"""

from django.conf import settings
from django.core.management import call_command
from django.db import migrations


def cache_table_create(apps, schema_editor):
    if any(c["BACKEND"].endswith("DatabaseCache") for c in settings.CACHES.values()):
        call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [
        ("studyapp", "0005_study_prolific_study_id_participant_stopped"),
    ]

    operations = [migrations.RunPython(cache_table_create, migrations.RunPython.noop)]
