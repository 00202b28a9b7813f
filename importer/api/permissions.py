"""The dashboard's roles, applied to the API before any input is read.

Reading needs the model's view permission (every role has it). Writing needs what the
view names in ``write_permission``. The services check again: this is the early 403.
"""

from rest_framework import permissions


class RolePermission(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if request.method in permissions.SAFE_METHODS:
            model = view.queryset.model
            return request.user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")
        needed = view.get_write_permission()
        if needed is None:
            return False
        if request.user.has_perm(needed):
            return True
        self.message = f"Your role does not allow this ({needed} is needed)."
        return False
