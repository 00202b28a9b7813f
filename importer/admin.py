"""The admin site for support staff. State and progress are read-only here: actions go
through importer.services like everywhere else, and report what happened row by row."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy

from importer import roles, services, states
from importer.errors import FerryError, NotFound, PermissionDenied, SourceError, ValidationError
from importer.models import (
    Alert,
    CopiedExtent,
    Host,
    HostVolumeMapping,
    IdempotencyRecord,
    ImportEvent,
    ImportSession,
    Job,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
    StorageNode,
    TransferSample,
    Volume,
    VolumeGroup,
)
from importer.states import Action
from importer.validation import check_initiators, name_problem

_PROGRESS_FIELDS = ("state", "progress_percentage", "copied_bytes", "total_bytes",
                    "average_transfer_rate", "current_transfer_rate",
                    "estimated_completion_timestamp", "admitted_timestamp", "pending_job",
                    "job_sent_at", "job_attempts", "lease_owner",
                    "lease_expires_at", "copy_seconds", "source_access_backup",
                    "source_unmap_confirmed_at", "source_unmap_confirmed_by",
                    "error_code", "error_message", "error_arguments", "created",
                    "last_update_timestamp")
# What a session was created with. Changing any of it under a running copy would corrupt the
# import, and the services own the rest (modify_schedule, force cancel), so it is read-only.
_SETUP_FIELDS = ("name", "type", "parent_session", "remote_system", "source_volume",
                 "source_group", "destination_resource_type", "destination_volume",
                 "destination_volume_group", "volume_group_name", "storage_node", "hosts",
                 "automatic_cutover",
                 "scheduled_timestamp", "throttle_bytes_per_second", "force_cancel")


def _reason(error: FerryError) -> str:
    if isinstance(error, ValidationError):
        return " ".join(problem for problems in error.field_errors.values()
                        for problem in problems)
    return error.message


def _report_each(modeladmin, request, objects, run) -> None:
    """Run ``run(obj)`` on each object and say what happened to it: one refusal stops
    nothing, and a domain error is a message, never a 500."""
    for obj in objects:
        try:
            done = run(obj)
        except (SourceError, NotFound) as error:
            level, outcome = messages.ERROR, f"failed: {error.message}"
        except PermissionDenied as refusal:
            level, outcome = messages.ERROR, f"refused: {refusal.message}"
        except FerryError as refusal:  # the state, a rule or the input says no
            level, outcome = messages.WARNING, f"refused: {_reason(refusal)}"
        else:
            level, outcome = messages.SUCCESS, done
        modeladmin.message_user(request, f"{obj}: {outcome}", level=level)


# --- Import sessions ------------------------------------------------------------------------

def _session_action(action: Action, done: str, *, force: bool = False):
    """An admin action that runs ``action`` through the service on each selected session."""
    action_info = states.ACTIONS[action]
    label = action_info.force_label if force else action_info.label

    @admin.action(description=f"{label} selected import sessions",
                  permissions=["force" if force else "operate"])
    def run(modeladmin, request, queryset):
        def perform(session):
            moved = services.perform_action(session.pk, action, actor=services.Actor.of(request),
                                            force=force)
            return f"{done} (now {moved.state_info.label})"
        _report_each(modeladmin, request, queryset.order_by("name"), perform)

    run.__name__ = f"{'force_' if force else ''}{action}_sessions"
    return run


pause_sessions = _session_action(Action.PAUSE, "paused")
resume_sessions = _session_action(Action.RESUME, "resumed")
cancel_sessions = _session_action(Action.CANCEL, "cancel started")
force_cancel_sessions = _session_action(Action.CANCEL, "force cancel started", force=True)
cleanup_sessions = _session_action(Action.CLEANUP, "cleanup started")
force_cleanup_sessions = _session_action(Action.CLEANUP, "force cleanup started", force=True)


class ImportEventInline(admin.TabularInline):
    """The session's audit trail, newest first. It is evidence, so it cannot be edited."""

    model = ImportEvent
    extra = 0
    can_delete = False
    show_change_link = True  # the event's page shows its error message and details
    fields = ("timestamp", "actor_name", "action", "from_state", "to_state", "outcome",
              "error_code", "client_address")
    readonly_fields = fields
    ordering = ("-timestamp", "-id")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ImportSession)
class ImportSessionAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "progress_percentage", "source", "remote_system",
                    "destination_resource_type", "parent_session", "last_update_timestamp")
    list_filter = ("state", "destination_resource_type",
                   ("parent_session", admin.EmptyFieldListFilter), "remote_system",
                   "storage_node")
    search_fields = ("name", "description", "source_volume__name", "source_group__name")
    list_select_related = ("remote_system", "parent_session", "source_volume",
                           "source_group")
    fieldsets = (
        (None, {"fields": ("name", "description", "type", "parent_session")}),
        ("Source and destination", {"fields": (
            "remote_system", "source_volume", "source_group", "destination_resource_type",
            "destination_volume", "destination_volume_group", "volume_group_name",
            "storage_node", "hosts")}),
        ("Options", {"fields": ("automatic_cutover", "scheduled_timestamp",
                                "throttle_bytes_per_second", "force_cancel")}),
        ("Progress", {"fields": _PROGRESS_FIELDS}),
    )
    readonly_fields = _SETUP_FIELDS + _PROGRESS_FIELDS
    inlines = [ImportEventInline]
    actions = [pause_sessions, resume_sessions, cancel_sessions, force_cancel_sessions,
               cleanup_sessions, force_cleanup_sessions]

    @admin.display(description="source")
    def source(self, session):
        return session.source_resource.name

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # delete is REST-only (spec)
        return actions

    def has_add_permission(self, request):
        return False  # imports are created through the dashboard or the API (validated)

    def has_delete_permission(self, request, obj=None):
        return False  # REST-only, and only once the session is finished

    def has_change_permission(self, request, obj=None):
        # Only the description is editable, through services.describe_import, which needs
        # the operate permission too.
        return (super().has_change_permission(request, obj)
                and request.user.has_perm(roles.OPERATE))

    def has_operate_permission(self, request):
        return request.user.has_perm(roles.OPERATE)

    def has_force_permission(self, request):
        return request.user.has_perm(roles.FORCE)

    def save_model(self, request, obj, form, change):
        if "description" in form.changed_data:
            services.describe_import(obj.pk, obj.description, actor=services.Actor.of(request))


# --- The audit trail and other records nobody edits -------------------------------------------

class ReadOnlyAdmin(admin.ModelAdmin):
    """View only: these are records of what happened, kept as they were written."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StorageNode)
class StorageNodeAdmin(admin.ModelAdmin):
    """Nodes register and report themselves: nothing to add or change here. A node taken
    out of service can be deleted once no session or destination refers to it."""

    list_display = ("name", "health", "hostname", "pool_path", "free_bytes", "used_bytes",
                    "last_heartbeat")
    search_fields = ("name", "hostname", "pool_path")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ImportEvent)
class ImportEventAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "session_name", "subject", "actor_name", "action",
                    "from_state", "to_state", "outcome", "client_address")
    list_filter = ("outcome", "action")
    search_fields = ("session_name", "subject", "actor_name", "error_code")
    date_hierarchy = "timestamp"


@admin.register(CopiedExtent)
class CopiedExtentAdmin(ReadOnlyAdmin):
    list_display = ("session", "start", "end", "chunk_size", "created")
    list_filter = ("session__state",)
    search_fields = ("session__name",)
    list_select_related = ("session",)

    def has_view_permission(self, request, obj=None):
        # Checkpoints are part of a session: whoever may see sessions may see them.
        return (request.user.has_perm("importer.view_importsession")
                or super().has_view_permission(request, obj))


@admin.register(TransferSample)
class TransferSampleAdmin(ReadOnlyAdmin):
    """The charts' history, as recorded: written by copies, pruned by age."""

    list_display = ("session", "timestamp", "bytes_per_second", "copied_bytes")
    search_fields = ("session__name",)
    list_select_related = ("session",)
    date_hierarchy = "timestamp"

    def has_view_permission(self, request, obj=None):
        return (request.user.has_perm("importer.view_importsession")
                or super().has_view_permission(request, obj))


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """Acknowledged on the dashboard's Alerts page (audited there); read-only here."""

    list_display = ("generated_timestamp", "severity", "resource_name", "event_code", "state",
                    "is_acknowledged", "acknowledged_by")
    list_filter = ("state", "severity", "is_acknowledged", "resource_type")
    search_fields = ("resource_name", "event_code", "description_l10n")
    date_hierarchy = "generated_timestamp"


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("queued_time", "description_l10n", "resource_name", "state", "step",
                    "progress_percentage", "start_time", "end_time")
    list_filter = ("state", "resource_type", "resource_action")
    search_fields = ("resource_name", "description_l10n")
    date_hierarchy = "queued_time"


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    """Replayed responses hold other users' data: no role grants the view permission."""

    list_display = ("key", "user", "method", "path", "status_code", "created")
    list_filter = ("method", "status_code")
    search_fields = ("key", "path", "user__username")
    list_select_related = ("user",)


# --- Remote systems and what discovery found ----------------------------------------------------

class DeleteThroughServiceMixin:
    """Deleting goes through ``delete_through_service(pk, actor=...)``, which may refuse:
    Django's confirmation page first, then one message per row, never a 500."""

    delete_through_service = None

    @admin.action(description=gettext_lazy("Delete selected %(verbose_name_plural)s"),
                  permissions=["delete"])
    def delete_selected(self, request, queryset):
        if not request.POST.get("post"):
            return admin_actions.delete_selected(self, request, queryset)

        def delete(obj):
            type(self).delete_through_service(obj.pk, actor=services.Actor.of(request))
            self.log_deletions(request, [obj])
            return "deleted"
        _report_each(self, request, queryset, delete)
        return None

    def delete_model(self, request, obj):
        type(self).delete_through_service(obj.pk, actor=services.Actor.of(request))

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except FerryError as refusal:
            self.message_user(request, f"Not deleted: {_reason(refusal)}", messages.ERROR)
            opts = self.model._meta
            return redirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change",
                                    args=[object_id]))


@admin.register(RemoteSystem)
class RemoteSystemAdmin(DeleteThroughServiceMixin, admin.ModelAdmin):
    """Remote systems are added and changed in the dashboard, whose service checks their
    settings (a folder against FERRY_SOURCE_ROOTS, an NBD URI and its TLS files); here they
    are viewed, rediscovered and deleted."""

    list_display = ("name", "driver_type", "address", "status", "latency_ms",
                    "last_health_check", "last_discovery_timestamp")
    list_filter = ("driver_type", "status")
    search_fields = ("name", "description")
    actions = ["rediscover", "delete_selected"]
    delete_through_service = services.delete_remote_system

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request):
        return request.user.has_perm(roles.OPERATE)

    @admin.action(description="Rediscover selected remote systems", permissions=["operate"])
    def rediscover(self, request, queryset):
        def discover(system):
            services.request_discovery(system.pk, actor=services.Actor.of(request))
            return "discovery started (the Status column shows its outcome)"
        _report_each(self, request, queryset, discover)



@admin.register(SourceVolume)
class SourceVolumeAdmin(admin.ModelAdmin):
    list_display = ("name", "identifier", "remote_system", "group", "size",
                    "importable_criteria")
    list_filter = ("importable_criteria", "remote_system")
    search_fields = ("name", "identifier")
    list_select_related = ("remote_system", "group")
    readonly_fields = ("last_seen",)


@admin.register(SourceGroup)
class SourceGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "remote_system", "size", "importable_criteria")
    list_filter = ("importable_criteria", "remote_system")
    search_fields = ("name", "identifier")
    list_select_related = ("remote_system",)


# --- Hosts and destinations -------------------------------------------------------------------

class HostAdminForm(forms.ModelForm):
    """The service's checks on names and initiators, run while the form can still show
    them: save_model is too late to refuse."""

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if problem := name_problem(name):
            raise forms.ValidationError(problem)
        return name

    def clean_initiators(self):
        initiators = self.cleaned_data["initiators"] or []
        if not isinstance(initiators, list):
            raise forms.ValidationError('A list of initiators: ["iqn...", "50:01:..."].')
        initiators, problems = check_initiators(initiators)
        if problems:
            raise forms.ValidationError(problems)
        return initiators


@admin.register(Host)
class HostAdmin(DeleteThroughServiceMixin, admin.ModelAdmin):
    """Saved and deleted through the services, so each change is audited and a host still
    in use is not deleted."""

    form = HostAdminForm

    list_display = ("name", "os_type", "created")
    list_filter = ("os_type",)
    search_fields = ("name", "description")
    actions = ["delete_selected"]
    delete_through_service = services.delete_host

    def save_model(self, request, obj, form, change):
        saved = services.save_host(obj.pk if change else None, name=obj.name,
                                   os_type=obj.os_type, description=obj.description,
                                   initiators=obj.initiators, actor=services.Actor.of(request))
        obj.pk = saved.pk


@admin.register(HostVolumeMapping)
class HostVolumeMappingAdmin(admin.ModelAdmin):
    list_display = ("host", "volume", "logical_unit_number", "created")
    list_filter = ("host",)
    search_fields = ("host__name", "volume__name")
    list_select_related = ("host", "volume")


class HostVolumeMappingInline(admin.TabularInline):
    model = HostVolumeMapping
    extra = 0


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    list_display = ("name", "size", "location", "storage_node", "is_read_only",
                    "volume_group", "created")
    list_filter = ("is_read_only", "storage_node", "volume_group")
    search_fields = ("name", "location")
    list_select_related = ("volume_group", "storage_node")
    # Destinations are created and enabled by an import's setup; the mover writes to
    # ``location``, so pointing it elsewhere from here would write over another file.
    readonly_fields = ("size", "location", "storage_node", "is_read_only", "volume_group",
                       "created")
    inlines = [HostVolumeMappingInline]

    def has_add_permission(self, request):
        return False


@admin.register(VolumeGroup)
class VolumeGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "created")
    list_filter = ("created",)
    search_fields = ("name",)
