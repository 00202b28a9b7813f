from django.db import migrations, models


def name_groups_and_map_members(apps, schema_editor):
    """Existing group sessions keep the volume group name setup gave them, and each member
    gets its group's hosts: setup now maps a member to its own hosts."""
    ImportSession = apps.get_model("importer", "ImportSession")
    groups = ImportSession.objects.filter(source_group__isnull=False).select_related(
        "source_group", "destination_volume_group")
    for group in groups:
        group.volume_group_name = (
            group.destination_volume_group.name if group.destination_volume_group
            else f"import-{group.pk}-{group.source_group.name}"[:255])
        group.save(update_fields=["volume_group_name"])
        hosts = list(group.hosts.all())
        for member in ImportSession.objects.filter(parent_session=group):
            if not member.hosts.exists():
                member.hosts.set(hosts)


class Migration(migrations.Migration):

    dependencies = [
        ('importer', '0009_host_frontends'),
    ]

    operations = [
        migrations.AddField(
            model_name='importsession',
            name='volume_group_name',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.RunPython(name_groups_and_map_members, migrations.RunPython.noop),
    ]
