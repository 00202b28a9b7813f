"""API tokens die with the password they were issued against: any password change (a
user's set_password and save, the admin's form, ``manage.py changepassword``) revokes them."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver
from knox.models import AuthToken

from importer import audit


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def revoke_tokens_on_password_change(sender, instance, created, **kwargs) -> None:
    # Django sets _password only in set_password(), and not for a hash upgrade at login:
    # the same test Django uses to call the validators' password_changed().
    if created or getattr(instance, "_password", None) is None:
        return
    revoked, _ = AuthToken.objects.filter(user=instance).delete()
    audit.record("password_changed", user=instance, actor_name=instance.get_username(),
                 address=None, subject=f"user {instance.get_username()}",
                 details={"api_tokens_revoked": revoked})
