"""Issue an API token for a user, printed once (Ferry keeps only its hash)."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from knox.models import AuthToken


class Command(BaseCommand):
    help = "Issue an API token for USERNAME and print it. Only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--days", type=int, default=None,
                            help="Days until it expires (default: FERRY_API_TOKEN_DAYS).")

    def handle(self, *args, username, days, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        expiry = timedelta(days=days) if days else None
        instance, token = (AuthToken.objects.create(user, expiry=expiry) if expiry
                           else AuthToken.objects.create(user))
        self.stderr.write(f"Token for {username}, expires {instance.expiry:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(token)
