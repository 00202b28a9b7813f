"""Create the first admin user (FERRY_ADMIN_USER / FERRY_ADMIN_PASSWORD, or a generated one)."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from importer.roles import ADMIN


class Command(BaseCommand):
    help = "Create the admin user if it does not exist; print a generated password once."

    def handle(self, *args, **options):
        username = os.environ.get("FERRY_ADMIN_USER", "admin")
        password = os.environ.get("FERRY_ADMIN_PASSWORD")
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            generated = password is None
            password = password or secrets.token_urlsafe(12)
            user = user_model.objects.create_superuser(username, "", password)
            shown = password if generated else "(from FERRY_ADMIN_PASSWORD)"
            self.stdout.write(self.style.SUCCESS(
                f"Created admin user {username!r} with password: {shown}"))
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"Admin user {username!r}: password set from FERRY_ADMIN_PASSWORD.")
        else:
            self.stdout.write(f"Admin user {username!r} exists; its password is unchanged.")
        user.groups.add(Group.objects.get(name=ADMIN))
