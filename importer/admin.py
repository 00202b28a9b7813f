"""The admin site for support staff. State and progress are read-only here: actions go
through importer.services like everywhere else."""

from django.contrib import admin

from importer.models import (
    CopiedExtent,
    Host,
    HostVolumeMapping,
    ImportEvent,
    ImportSession,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
    Volume,
    VolumeGroup,
)

_PROGRESS_FIELDS = ("state", "progress_percentage", "copied_bytes", "total_bytes",
                    "average_transfer_rate", "current_transfer_rate",
                    "estimated_completion_timestamp", "admitted_timestamp", "lease_owner",
                    "lease_expires_at", "copy_seconds", "source_access_backup",
                    "error_code", "error_message", "error_arguments", "created",
                    "last_update_timestamp")


@admin.register(RemoteSystem)
class RemoteSystemAdmin(admin.ModelAdmin):
    list_display = ("name", "driver_type", "status", "last_discovery_timestamp")
    list_filter = ("driver_type", "status")
    search_fields = ("name", "description")
    readonly_fields = ("status", "status_message", "last_discovery_timestamp", "created")


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


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ("name", "os_type", "created")
    list_filter = ("os_type",)
    search_fields = ("name",)


class HostVolumeMappingInline(admin.TabularInline):
    model = HostVolumeMapping
    extra = 0


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    list_display = ("name", "size", "location", "is_read_only", "volume_group", "created")
    list_filter = ("is_read_only",)
    search_fields = ("name", "location")
    list_select_related = ("volume_group",)
    inlines = [HostVolumeMappingInline]


@admin.register(VolumeGroup)
class VolumeGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "created")
    search_fields = ("name",)


class ImportEventInline(admin.TabularInline):
    model = ImportEvent
    extra = 0
    can_delete = False
    fields = ("timestamp", "actor_name", "action", "from_state", "to_state", "outcome",
              "error_code", "client_address")
    readonly_fields = fields
    ordering = ("-timestamp", "-id")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ImportSession)
class ImportSessionAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "progress_percentage", "remote_system",
                    "destination_resource_type", "parent_session", "last_update_timestamp")
    list_filter = ("state", "destination_resource_type", "remote_system")
    search_fields = ("name", "description")
    list_select_related = ("remote_system", "parent_session")
    readonly_fields = _PROGRESS_FIELDS
    inlines = [ImportEventInline]

    def has_add_permission(self, request):
        return False  # imports are created through the dashboard or the API (validated)


@admin.register(ImportEvent)
class ImportEventAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "session_name", "actor_name", "action", "from_state",
                    "to_state", "outcome", "client_address")
    list_filter = ("action", "outcome")
    search_fields = ("session_name", "actor_name", "error_code")
    date_hierarchy = "timestamp"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the audit trail is append-only


@admin.register(CopiedExtent)
class CopiedExtentAdmin(admin.ModelAdmin):
    list_display = ("session", "start", "end", "chunk_size", "created")
    list_select_related = ("session",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
