"""What the REST API reads and writes. Writes are validated here for shape only: the
services decide what is allowed and raise domain errors, which become problem details."""

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from importer import roles
from importer.filters import MAX_ID
from importer.models import (
    DestinationType,
    DriverType,
    Host,
    HostOsType,
    ImportEvent,
    ImportSession,
    NodeStatus,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
    StorageNode,
    Volume,
    VolumeGroup,
)
from importer.services import frontends, source_access
from importer.states import Action


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem: every error the API returns."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable: match on this, not on detail.")
    instance = serializers.CharField(required=False)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   required=False, help_text="Messages by field (400).")
    state = serializers.CharField(required=False, help_text="The session's state (409).")
    allowed_actions = serializers.ListField(child=serializers.CharField(), required=False,
                                            help_text="What the state allows instead (409).")
    arguments = serializers.DictField(required=False)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    arguments = serializers.DictField()


# --- Remote systems, sources, hosts, destinations ------------------------------------------

class DirectorySettingsSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text="A folder under one of FERRY_SOURCE_ROOTS; each file is a volume and "
                  "each subfolder a consistency group.")


class NbdSettingsSerializer(serializers.Serializer):
    uri = serializers.CharField(
        help_text="The NBD server: nbd://host[:port], nbd+unix:///?socket=/path, or nbds:// "
                  "(nbds+unix://) with TLS. Its exports are the volumes.")
    tls_psk_file = serializers.CharField(required=False, help_text="nbds: a PSK file "
                                         "(username:hexkey lines) readable by the workers.")
    tls_certificates = serializers.CharField(required=False, help_text="nbds: a folder "
                                             "with ca-cert.pem (and client-cert.pem, "
                                             "client-key.pem).")
    tls_username = serializers.CharField(required=False, help_text="nbds: the PSK identity "
                                         "(default: the PSK file's first).")
    tls_verify_peer = serializers.BooleanField(required=False, default=True)
    groups = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="Consistency groups: name → export names. Exports named group/volume "
                  "form groups by themselves.")


@extend_schema_field(PolymorphicProxySerializer(
    component_name="DriverSettings", resource_type_field_name=None,
    serializers=[DirectorySettingsSerializer, NbdSettingsSerializer]))
class DriverSettingsField(serializers.JSONField):
    """The driver's own settings; the driver checks them (services.inventory)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Expected an object of the driver's settings.")
        return super().to_internal_value(data)


class RemoteSystemSerializer(serializers.ModelSerializer):
    driver_type = serializers.ChoiceField(
        choices=DriverType.choices, default=DriverType.DIRECTORY,
        help_text="directory: a folder of image files; nbd: an NBD server's exports. Fixed "
                  "once the system exists.")
    driver_settings = DriverSettingsField()

    class Meta:
        model = RemoteSystem
        fields = ["id", "name", "description", "driver_type", "driver_settings", "status",
                  "status_message", "latency_ms", "last_health_check",
                  "last_discovery_timestamp", "created"]
        read_only_fields = ["status", "status_message", "latency_ms", "last_health_check",
                            "last_discovery_timestamp", "created"]


class SourceVolumeSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceVolume
        fields = ["id", "remote_system", "group", "identifier", "name", "description", "size",
                  "read_only", "importable_criteria", "importable_reason", "last_seen"]


class SourceGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceGroup
        fields = ["id", "remote_system", "identifier", "name", "size", "importable_criteria",
                  "importable_reason", "last_seen"]


class HostSerializer(serializers.ModelSerializer):
    os_type = serializers.ChoiceField(choices=HostOsType.choices, default=HostOsType.LINUX)
    initiators = serializers.ListField(child=serializers.CharField(max_length=255),
                                       required=False, default=list,
                                       help_text="Initiator ports: iSCSI names (iqn., eui., "
                                                 "naa.) or Fibre Channel WWNs; stored in lower "
                                                 "case, a WWN with colons.")

    class Meta:
        model = Host
        fields = ["id", "name", "description", "os_type", "initiators", "created"]
        read_only_fields = ["created"]
        # Uniqueness is the service's check, so both paths give the same message.
        extra_kwargs = {"name": {"validators": []}}


class VolumeSerializer(serializers.ModelSerializer):
    is_enabled = serializers.BooleanField(read_only=True,
                                          help_text="Writable by its hosts (not read-only).")
    hosts = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    frontend_mode = serializers.CharField(
        read_only=True, help_text="forward (host writes go to the source first), cut_over "
                                  "(the destination alone), fenced (no host I/O); empty "
                                  "before the front end starts.")

    class Meta:
        model = Volume
        fields = ["id", "name", "size", "location", "is_read_only", "is_enabled",
                  "volume_group", "storage_node", "hosts", "frontend_state", "frontend_mode",
                  "frontend_port", "frontend_restarts", "frontend_message", "host_read_rate",
                  "host_write_rate", "created"]


class VolumeGroupSerializer(serializers.ModelSerializer):
    volumes = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = VolumeGroup
        fields = ["id", "name", "volumes", "created"]


class StorageNodeSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(
        source="health", choices=NodeStatus.choices, read_only=True,
        help_text="Offline once no heartbeat came for FERRY_NODE_OFFLINE_SECONDS.")
    status_message = serializers.CharField(source="health_message", read_only=True)
    unfinished_sessions = serializers.IntegerField(
        read_only=True, help_text="Unfinished volume sessions (and group members) on it.")

    class Meta:
        model = StorageNode
        fields = ["id", "name", "queue", "hostname", "version", "pool_path",
                  "capacity_bytes", "free_bytes", "used_bytes", "status", "status_message",
                  "last_heartbeat", "unfinished_sessions", "created"]
        read_only_fields = fields


# --- Import sessions --------------------------------------------------------------------------

@extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
class HostIdsField(serializers.Field):
    """The ids of a prefetched list of hosts."""

    def to_representation(self, hosts):
        return [host.pk for host in hosts]


class MemberSessionSerializer(serializers.ModelSerializer):
    """A session's own fields. A group's members are shown this way."""

    state_label = serializers.CharField(source="state_info.label", read_only=True)
    allowed_actions = serializers.SerializerMethodField(
        help_text="What the requesting user may do now (empty for viewers and members).")
    source_resource_id = serializers.UUIDField(read_only=True)
    source_resource_type = serializers.ChoiceField(choices=DestinationType.choices,
                                                   read_only=True)
    volume_group_name = serializers.CharField(
        read_only=True, help_text="A group: the destination volume group's name, created "
                                  "at setup; empty for a volume.")
    destination_resource_id = serializers.IntegerField(read_only=True, allow_null=True)
    host_ids = HostIdsField(source="listed_hosts", read_only=True,
                            help_text="Hosts the destination is mapped to.")
    error = serializers.SerializerMethodField()
    manual_step = serializers.SerializerMethodField()
    # Annotated by services.frontends.with_host_rates (the viewset's queryset).
    host_read_rate = serializers.IntegerField(
        read_only=True, help_text="Bytes/s the hosts read through the destination's front "
                                  "end now (a group: its members' sum).")
    host_write_rate = serializers.IntegerField(
        read_only=True, help_text="Bytes/s the hosts write through the destination's front "
                                  "end now (a group: its members' sum).")

    class Meta:
        model = ImportSession
        fields = ["id", "name", "description", "type", "state", "state_label",
                  "allowed_actions", "remote_system", "storage_node", "source_resource_id",
                  "source_resource_type", "destination_resource_id",
                  "destination_resource_type", "volume_group_name", "parent_session",
                  "host_ids",
                  "progress_percentage", "copied_bytes", "total_bytes",
                  "average_transfer_rate", "current_transfer_rate", "host_read_rate",
                  "host_write_rate",
                  "estimated_completion_timestamp", "automatic_cutover",
                  "scheduled_timestamp", "throttle_bytes_per_second", "error",
                  "source_unmap_confirmed_at", "source_unmap_confirmed_by", "manual_step",
                  "created", "last_update_timestamp"]
        read_only_fields = fields
        extra_kwargs = {  # what the figures mean (README, "The data mover")
            "current_transfer_rate": {"help_text": (
                "Data actually moved per second (holes and zero chunks skipped do not "
                "count), smoothed; 0 unless copying. A group: its copying members' sum.")},
            "average_transfer_rate": {"help_text": (
                "Data moved over the time spent copying, bytes/s. A group: its members' "
                "sum.")},
            "estimated_completion_timestamp": {"help_text": (
                "When the copy should end; null unless copying, and until the first "
                "measurement after a start or resume. A group: its last member's.")},
        }

    @extend_schema_field(serializers.CharField(allow_null=True, help_text=(
        "Where Ferry cannot change the source's host access (an NBD server): the step the "
        "operator does by hand, before Enable Destination Volume or after a cancel.")))
    def get_manual_step(self, session) -> str | None:
        return source_access.manual_step(session)

    @extend_schema_field(serializers.ListField(
        child=serializers.ChoiceField(choices=[a.value for a in Action])))
    def get_allowed_actions(self, session) -> list[str]:
        if not self._can_operate():
            return []
        return sorted(session.allowed_actions)

    @extend_schema_field(ErrorSerializer(allow_null=True))
    def get_error(self, session):
        return session.error

    def _can_operate(self) -> bool:
        if "can_operate" not in self.context:  # once per response, not once per row
            request = self.context.get("request")
            self.context["can_operate"] = bool(request and request.user.has_perm(roles.OPERATE))
        return self.context["can_operate"]


class ImportSessionSerializer(MemberSessionSerializer):
    # Declared once, so a page of groups builds one member serializer, not one per group.
    members = MemberSessionSerializer(
        source="listed_members", many=True, read_only=True,
        help_text="A group's member sessions, one per volume; empty for a volume session.")

    class Meta(MemberSessionSerializer.Meta):
        fields = [*MemberSessionSerializer.Meta.fields, "members"]
        read_only_fields = fields


class HostAccessSerializer(serializers.Serializer):
    """Where one mapped host connects to a destination's front end (NBD over TLS PSK)."""

    host = serializers.CharField()
    volume = serializers.CharField(help_text="The destination volume served.")
    state = serializers.CharField(help_text="The front end: starting, serving, failed or "
                                            "stopped.")
    mode = serializers.CharField(help_text="forward, cut_over or fenced.")
    uri = serializers.CharField(help_text="nbds://HOST:PORT/ (the default export).")
    address = serializers.CharField(help_text="What hosts dial (FERRY_FRONTEND_HOST).")
    port = serializers.IntegerField()
    tls_psk_identity = serializers.CharField(help_text="The PSK identity: the host's name.")
    tls_psk_key = serializers.CharField(
        required=False, help_text="The host's key for this volume (hex). Only for roles "
                                  "that may operate imports; absent for viewers.")
    psk_file_line = serializers.CharField(
        required=False, help_text="identity:key, a line of a psktool-format PSK file. Only "
                                  "for roles that may operate imports.")


SECRET_ACCESS_FIELDS = ("tls_psk_key", "psk_file_line")


class ImportSessionDetailSerializer(ImportSessionSerializer):
    """One session, with how its hosts reach the destination (not in lists: it reads each
    destination's mappings)."""

    host_access = serializers.SerializerMethodField()

    class Meta(ImportSessionSerializer.Meta):
        fields = [*ImportSessionSerializer.Meta.fields, "host_access"]
        read_only_fields = fields

    @extend_schema_field(HostAccessSerializer(many=True))
    def get_host_access(self, session) -> list[dict]:
        access = frontends.host_access(session)
        if self._can_operate():
            return access
        return [{key: value for key, value in entry.items()
                 if key not in SECRET_ACCESS_FIELDS} for entry in access]


class MemberHostsSerializer(serializers.Serializer):
    source_volume_id = serializers.UUIDField(help_text="A member volume of the group.")
    host_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), max_length=1000,
        help_text="Its destination's hosts (empty: none).")


class ImportSessionCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    remote_system = serializers.IntegerField(required=False, allow_null=True, default=None,
                                             min_value=1, max_value=MAX_ID)
    source_resource_id = serializers.UUIDField(
        help_text="A source volume's or consistency group's id.")
    host_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
        default=list, max_length=1000,
        help_text="Hosts the destination is mapped to; for a consistency group, each member "
                  "volume not in consistency_group_member_host_ids.")
    consistency_group_member_host_ids = MemberHostsSerializer(
        many=True, required=False, default=list, max_length=1000,
        help_text="A consistency group: the hosts of each member volume that are not "
                  "host_ids. As PowerStore's, by source volume id instead of volume_wwn.")
    volume_group_name = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=255,
        help_text="A consistency group: the name of the destination volume group Ferry "
                  "creates at setup (PowerStore's volume_group_id names an existing one). "
                  "Unique; default: the source group's name, with -2, -3... when taken.")
    automatic_cutover = serializers.BooleanField(required=False, default=False)
    scheduled_timestamp = serializers.DateTimeField(required=False, allow_null=True,
                                                    default=None)
    throttle_bytes_per_second = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1,
        max_value=2**62, help_text="Bytes per second, at least 1 MiB; null for no limit.")
    storage_node = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=MAX_ID,
        help_text="The storage node for the destination (a group's all on it): online, "
                  "healthy, with room. Null: the node with the most room.")


class ImportSessionUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    scheduled_timestamp = serializers.DateTimeField(
        required=False, help_text="Only while the session is Scheduled.")


class ForceSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        required=False, default=False,
        help_text="Admin role only. A forced cancel does not restore the source's host "
                  "access; a forced cleanup gives up on restoring it and ends the session "
                  "Cancelled. Both record what they skipped.")


class EnableDestinationSerializer(serializers.Serializer):
    source_unmapped_confirmed = serializers.BooleanField(
        required=False, default=False,
        help_text="Where Ferry cannot revoke the source's host access (an NBD server), "
                  "confirms that the hosts were unmapped from the source by hand. Without "
                  "it, such a session answers 409 source_unmap_required with the step "
                  "(arguments.manual_step).")


class ImportEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportEvent
        fields = ["id", "timestamp", "session", "session_name", "subject", "actor_name",
                  "action", "from_state", "to_state", "outcome", "error_code",
                  "error_message", "client_address", "details"]
