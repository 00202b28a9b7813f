"""Synthetic import sessions for benchmarks: written directly, not through the services.

They are data to measure pages with, not imports: nothing on disk backs them. The command
refuses to run unless DJANGO_DEBUG is on.
"""

import random

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from importer import states
from importer.models import (
    DestinationType,
    ImportSession,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
)

MiB = 1024 * 1024
_STATES = [s for s in states.STATES if s not in (states.State.IN_PROGRESS,)]


class Command(BaseCommand):
    help = "Create synthetic sessions (default: 1,000 groups of 5 and 5,000 volumes)."

    def add_arguments(self, parser):
        parser.add_argument("--groups", type=int, default=1000)
        parser.add_argument("--group-size", type=int, default=5)
        parser.add_argument("--volumes", type=int, default=5000)

    def handle(self, *args, groups, group_size, volumes, **options):
        if not settings.DEBUG:
            raise CommandError("seed_sessions writes synthetic data: run it with DJANGO_DEBUG")
        chance = random.Random(42)
        with transaction.atomic():
            system, _ = RemoteSystem.objects.get_or_create(
                name="bench-array", defaults={"driver_settings": {"path": "/nonexistent"}})
            self._groups(system, groups, group_size, chance)
            self._volumes(system, volumes, chance)
        total = ImportSession.objects.count()
        self.stdout.write(f"{total} import sessions in the database.")

    def _volumes(self, system, count, chance):
        sources = SourceVolume.objects.bulk_create(
            SourceVolume(remote_system=system, identifier=f"bench-vol-{i}.img",
                         name=f"bench-vol-{i}.img", size=chance.randint(1, 512) * MiB)
            for i in range(count))
        ImportSession.objects.bulk_create(
            self._session(f"bench-volume-{i}", system, chance, source_volume=source,
                          destination_resource_type=DestinationType.VOLUME)
            for i, source in enumerate(sources))

    def _groups(self, system, count, size, chance):
        groups = SourceGroup.objects.bulk_create(
            SourceGroup(remote_system=system, identifier=f"bench-cg-{i}", name=f"bench-cg-{i}")
            for i in range(count))
        parents = ImportSession.objects.bulk_create(
            self._session(f"bench-group-{i}", system, chance, source_group=group,
                          destination_resource_type=DestinationType.VOLUME_GROUP)
            for i, group in enumerate(groups))
        members = SourceVolume.objects.bulk_create(
            SourceVolume(remote_system=system, group=group, identifier=f"{group.name}/{j}.img",
                         name=f"{j}.img", size=64 * MiB)
            for group in groups for j in range(size))
        ImportSession.objects.bulk_create(
            self._session(f"{parent.name} / {member.name}", system, chance, state=parent.state,
                          source_volume=member, parent_session=parent,
                          destination_resource_type=DestinationType.VOLUME)
            for parent, group_members in zip(parents, _chunks(members, size), strict=True)
            for member in group_members)

    def _session(self, name, system, chance, state=None, **fields):
        state = state or chance.choice(_STATES)
        return ImportSession(name=name, remote_system=system, state=state,
                             progress_percentage=chance.randint(0, 100),
                             total_bytes=chance.randint(1, 512) * MiB, **fields)


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]
