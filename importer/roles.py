"""The three roles (viewer, operator, admin) as Django groups, kept in sync after migrate."""

from django.contrib.auth.models import Group, Permission

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"

OPERATE = "importer.operate_importsession"
FORCE_CANCEL = "importer.force_cancel_importsession"
# Forcing a cancel or a cleanup: giving up on the rollback of a source (admins only).
FORCE = FORCE_CANCEL
MANAGE_SYSTEMS = "importer.change_remotesystem"
MANAGE_HOSTS = "importer.change_host"

_READ_MODELS = ["remotesystem", "sourcevolume", "sourcegroup", "host", "volume",
                "volumegroup", "hostvolumemapping", "importsession", "importevent",
                "storagenode", "alert", "job"]
_VIEW = [f"view_{model}" for model in _READ_MODELS]
_OPERATE = [*_VIEW, "operate_importsession", "add_importsession",
            "change_importsession"]
_ADMIN = [*_OPERATE, "force_cancel_importsession", "delete_importsession",
          *(f"{verb}_{model}" for verb in ("add", "change", "delete")
            for model in ("remotesystem", "host", "hostvolumemapping")),
          "delete_storagenode"]  # a node taken out of service, once nothing refers to it

ROLE_PERMISSIONS = {VIEWER: _VIEW, OPERATOR: _OPERATE, ADMIN: _ADMIN}


def sync_roles(**_signal_kwargs) -> None:
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = Permission.objects.filter(content_type__app_label="importer",
                                                codename__in=codenames)
        group.permissions.set(permissions)
