"""Ferry's data: remote systems and what they hold, destinations, import sessions, events.

Data only, plus small derived properties. State is written by ``importer.services`` alone.
"""

import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from importer import states

STATE_CHOICES = [(info.value.value, info.label) for info in states.STATES.values()]


class DriverType(models.TextChoices):
    DIRECTORY = "directory", "Directory"
    NBD = "nbd", "NBD server"


class SystemStatus(models.TextChoices):
    UNKNOWN = "Unknown", "Unknown"
    DISCOVERING = "Discovering", "Discovering"
    OK = "OK", "OK"
    UNREACHABLE = "Unreachable", "Unreachable"


class ImportableCriteria(models.TextChoices):
    """PowerStore's names for whether a source can be imported now."""

    READY = "Ready_For_Agentless_Import", "Ready For Agentless Import"
    IN_PROGRESS = "In_Progress", "Import In Progress"
    IMPORTED = "Imported", "Imported"
    OFFLINE = "Source_Volume_Offline", "Source Volume Offline"


class RemoteSystem(models.Model):
    name = models.CharField(max_length=128, unique=True)
    description = models.TextField(blank=True)
    driver_type = models.CharField(max_length=32, choices=DriverType.choices,
                                   default=DriverType.DIRECTORY)
    driver_settings = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=SystemStatus.choices,
                              default=SystemStatus.UNKNOWN)
    status_message = models.CharField(max_length=500, blank=True)
    last_discovery_timestamp = models.DateTimeField(null=True, blank=True)
    # When a discovery job was asked for; it runs in a worker, never in a web request.
    discovery_requested_at = models.DateTimeField(null=True, blank=True)
    # The last health check: when, and how long connecting (the NBD handshake) took.
    last_health_check = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def address(self) -> str:
        """Where its volumes are: a folder, or an NBD server's URI."""
        settings = self.driver_settings or {}
        return settings.get("path") or settings.get("uri") or ""


class NodeStatus(models.TextChoices):
    HEALTHY = "Healthy", "Healthy"
    UNHEALTHY = "Unhealthy", "Unhealthy"
    OFFLINE = "Offline", "Offline"


NODE_TONES = {NodeStatus.HEALTHY: "success", NodeStatus.UNHEALTHY: "danger",
              NodeStatus.OFFLINE: "neutral"}


class StorageNode(models.Model):
    """A worker host with its own pool: the destinations of the sessions on it live there,
    and their jobs run there (its own Celery queue). It reports itself (services.nodes)."""

    name = models.CharField(max_length=64, unique=True)
    queue = models.CharField(max_length=100, help_text="The Celery queue its worker consumes.")
    hostname = models.CharField(max_length=255, blank=True)
    version = models.CharField(max_length=32, blank=True)
    pool_path = models.CharField(max_length=1000)
    capacity_bytes = models.BigIntegerField(default=0)
    free_bytes = models.BigIntegerField(default=0)
    used_bytes = models.BigIntegerField(default=0, help_text="Allocated by Ferry's destinations.")
    status = models.CharField(max_length=16, choices=NodeStatus.choices,
                              default=NodeStatus.HEALTHY)
    status_message = models.CharField(max_length=500, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_online(self) -> bool:
        """Heard from within FERRY_NODE_OFFLINE_SECONDS (a killed worker stops beating)."""
        if self.status == NodeStatus.OFFLINE or self.last_heartbeat is None:
            return False
        silence = timezone.now() - self.last_heartbeat
        return silence <= timedelta(seconds=settings.FERRY_NODE_OFFLINE_SECONDS)

    @property
    def health(self) -> str:
        """What the dashboard and the API show: Offline once its heartbeats stop."""
        return self.status if self.is_online else NodeStatus.OFFLINE

    @property
    def health_message(self) -> str:
        if self.is_online or self.status == NodeStatus.OFFLINE:
            return self.status_message
        heard = self.last_heartbeat.isoformat(timespec="seconds") if self.last_heartbeat \
            else "never"
        return f"No heartbeat since {heard}: is its worker running?"

    @property
    def tone(self) -> str:
        return NODE_TONES[NodeStatus(self.health)]

    @property
    def used_percentage(self) -> int:
        """How full its pool's file system is (anyone's files), for the capacity bar."""
        if not self.capacity_bytes:
            return 0
        return round(100 * (self.capacity_bytes - self.free_bytes) / self.capacity_bytes)


class SourceGroup(models.Model):
    """A consistency group on a remote system: its volumes move and cut over together."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    remote_system = models.ForeignKey(RemoteSystem, on_delete=models.CASCADE,
                                      related_name="source_groups")
    identifier = models.CharField(max_length=500)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    importable_criteria = models.CharField(max_length=32, choices=ImportableCriteria.choices,
                                           default=ImportableCriteria.READY)
    importable_reason = models.CharField(max_length=500, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["remote_system", "name"]
        constraints = [models.UniqueConstraint(fields=["remote_system", "identifier"],
                                               name="unique_source_group_identifier")]

    def __str__(self):
        return f"{self.remote_system}:{self.name}"


class SourceVolume(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    remote_system = models.ForeignKey(RemoteSystem, on_delete=models.CASCADE,
                                      related_name="source_volumes")
    group = models.ForeignKey(SourceGroup, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="volumes")
    identifier = models.CharField(max_length=500)
    name = models.CharField(max_length=255)
    description = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField(default=0)
    read_only = models.BooleanField(default=False, help_text="The source serves it read-only.")
    # What the volume is, whatever name or system reaches it (the driver's stable id): one
    # physical volume has one unfinished import at most.
    physical_id = models.CharField(max_length=200, blank=True, db_index=True)
    importable_criteria = models.CharField(max_length=32, choices=ImportableCriteria.choices,
                                           default=ImportableCriteria.READY)
    importable_reason = models.CharField(max_length=500, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["remote_system", "identifier"]
        constraints = [models.UniqueConstraint(fields=["remote_system", "identifier"],
                                               name="unique_source_volume_identifier")]

    def __str__(self):
        return f"{self.remote_system}:{self.identifier}"


class HostOsType(models.TextChoices):
    LINUX = "Linux", "Linux"
    WINDOWS = "Windows", "Windows"
    ESXI = "ESXi", "ESXi"
    AIX = "AIX", "AIX"
    HP_UX = "HP-UX", "HP-UX"
    SOLARIS = "Solaris", "Solaris"


class Host(models.Model):
    name = models.CharField(max_length=128, unique=True)
    description = models.TextField(blank=True)
    os_type = models.CharField(max_length=16, choices=HostOsType.choices,
                               default=HostOsType.LINUX)
    initiators = models.JSONField(default=list, blank=True,
                                  help_text="Initiator port names (IQN or WWN).")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class VolumeGroup(models.Model):
    """The destination of a consistency group import."""

    name = models.CharField(max_length=255, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class FrontEndState(models.TextChoices):
    NONE = "", "None"
    STARTING = "starting", "Starting"
    SERVING = "serving", "Serving"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


def new_access_key() -> str:
    return secrets.token_hex(32)


class Volume(models.Model):
    """A destination volume: a sparse file in Ferry's pool."""

    name = models.CharField(max_length=255, unique=True)
    size = models.BigIntegerField()
    location = models.CharField(max_length=1000, help_text="Path of the file in the pool.")
    is_read_only = models.BooleanField(default=True)
    storage_node = models.ForeignKey(StorageNode, on_delete=models.PROTECT, null=True,
                                     blank=True, related_name="volumes")
    volume_group = models.ForeignKey(VolumeGroup, on_delete=models.SET_NULL, null=True,
                                     blank=True, related_name="volumes")
    hosts = models.ManyToManyField(Host, through="HostVolumeMapping", related_name="volumes",
                                   blank=True)
    # Its front end (importer.frontends): the NBD server hosts use from Enable Destination
    # Volume on. Reported by the storage node that runs it.
    frontend_state = models.CharField(max_length=16, choices=FrontEndState.choices,
                                      default=FrontEndState.NONE)
    frontend_port = models.PositiveIntegerField(null=True, blank=True)
    frontend_mode = models.CharField(max_length=16, blank=True,
                                     help_text="forward, cut_over or fenced.")
    frontend_restarts = models.PositiveIntegerField(default=0)
    frontend_message = models.CharField(max_length=500, blank=True)
    host_read_rate = models.BigIntegerField(default=0, help_text="Host reads, bytes/s.")
    host_write_rate = models.BigIntegerField(default=0, help_text="Host writes, bytes/s.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_enabled(self) -> bool:
        return not self.is_read_only


class HostVolumeMapping(models.Model):
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="mappings")
    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="mappings")
    logical_unit_number = models.PositiveIntegerField(default=0)
    # The host's TLS pre-shared key for this volume's front end (its identity is the host's
    # name): a key per mapping, so a host mapped to another volume cannot use this one.
    access_key = models.CharField(max_length=64, default=new_access_key)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "volume"],
                                               name="unique_host_volume_mapping")]

    def __str__(self):
        return f"{self.host} → {self.volume}"


class SessionType(models.TextChoices):
    AGENTLESS = "Agentless", "Agentless"


class DestinationType(models.TextChoices):
    VOLUME = "volume", "Volume"
    VOLUME_GROUP = "volume_group", "Volume group"


class ImportSession(models.Model):
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=16, choices=SessionType.choices,
                            default=SessionType.AGENTLESS)
    remote_system = models.ForeignKey(RemoteSystem, on_delete=models.PROTECT,
                                      related_name="import_sessions")
    source_volume = models.ForeignKey(SourceVolume, on_delete=models.PROTECT, null=True,
                                      blank=True, related_name="import_sessions")
    source_group = models.ForeignKey(SourceGroup, on_delete=models.PROTECT, null=True,
                                     blank=True, related_name="import_sessions")
    destination_volume = models.ForeignKey(Volume, on_delete=models.SET_NULL, null=True,
                                           blank=True, related_name="import_sessions")
    destination_volume_group = models.ForeignKey(VolumeGroup, on_delete=models.SET_NULL,
                                                 null=True, blank=True,
                                                 related_name="import_sessions")
    destination_resource_type = models.CharField(max_length=16,
                                                 choices=DestinationType.choices)
    # A group session's destination volume group, chosen at create and made at setup.
    volume_group_name = models.CharField(max_length=255, blank=True)
    parent_session = models.ForeignKey("self", on_delete=models.CASCADE, null=True,
                                       blank=True, related_name="members")
    # The hosts a volume's (or a member's) destination is mapped to at setup; a group's are
    # all its members' hosts.
    hosts = models.ManyToManyField(Host, blank=True, related_name="import_sessions")
    # Where the destination lives and the jobs run; a group's members share their group's.
    # None: created before storage nodes, its jobs go to the shared queue.
    storage_node = models.ForeignKey(StorageNode, on_delete=models.PROTECT, null=True,
                                     blank=True, related_name="import_sessions")

    state = models.CharField(max_length=32, choices=STATE_CHOICES, db_index=True)
    progress_percentage = models.PositiveSmallIntegerField(default=0)
    copied_bytes = models.BigIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    average_transfer_rate = models.BigIntegerField(default=0, help_text="Bytes per second.")
    current_transfer_rate = models.BigIntegerField(default=0, help_text="Bytes per second.")
    estimated_completion_timestamp = models.DateTimeField(null=True, blank=True)
    automatic_cutover = models.BooleanField(default=False)
    scheduled_timestamp = models.DateTimeField(null=True, blank=True)
    throttle_bytes_per_second = models.BigIntegerField(null=True, blank=True)
    force_cancel = models.BooleanField(default=False)
    # When the scheduler gave this session an import slot (None while it waits).
    admitted_timestamp = models.DateTimeField(null=True, blank=True)
    # What revoking the source's host access changed, so cancel can put it back.
    source_access_backup = models.JSONField(null=True, blank=True)
    # Where Ferry cannot revoke the source's host access: who confirmed the manual unmap.
    source_unmap_confirmed_at = models.DateTimeField(null=True, blank=True)
    source_unmap_confirmed_by = models.CharField(max_length=150, blank=True)
    # The job outbox: the job this state hands to the workers, written with the state, and
    # when it was last sent to the broker (None: not yet). See importer.services.dispatch.
    pending_job = models.CharField(max_length=16, blank=True, db_index=True)
    job_sent_at = models.DateTimeField(null=True, blank=True)
    job_attempts = models.PositiveSmallIntegerField(default=0)  # tries of the pending job
    # The lease: a worker runs the pending job only while it holds it (services.leases).
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    copy_seconds = models.FloatField(default=0, help_text="Time spent copying so far.")

    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_arguments = models.JSONField(default=dict, blank=True)

    created = models.DateTimeField(auto_now_add=True)
    last_update_timestamp = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(source_volume__isnull=False, source_group__isnull=True)
                           | Q(source_volume__isnull=True, source_group__isnull=False)),
                name="session_has_exactly_one_source",
            ),
        ]
        indexes = [models.Index(fields=["state", "created"], name="session_state_created")]
        permissions = [
            ("operate_importsession", "Can run actions on import sessions"),
            ("force_cancel_importsession", "Can force-cancel import sessions"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_group(self) -> bool:
        return self.source_group_id is not None

    @property
    def is_member(self) -> bool:
        return self.parent_session_id is not None

    @property
    def kind(self) -> str:
        return states.GROUP if self.is_group else states.VOLUME

    @property
    def state_info(self) -> states.StateInfo:
        return states.info(self.state)

    @property
    def is_copying(self) -> bool:
        return self.state in states.COPYING

    @property
    def allowed_actions(self) -> frozenset[str]:
        """Member sessions act only through their group (spec, *ours*)."""
        if self.is_member:
            return frozenset()
        return states.allowed_actions(self.kind, self.state)

    @property
    def source_resource(self):
        return self.source_group if self.is_group else self.source_volume

    @property
    def destination_resource(self):
        return self.destination_volume_group if self.is_group else self.destination_volume

    @property
    def source_resource_id(self):
        return self.source_group_id if self.is_group else self.source_volume_id

    @property
    def source_resource_type(self) -> str:
        return DestinationType.VOLUME_GROUP if self.is_group else DestinationType.VOLUME

    @property
    def destination_resource_id(self) -> int | None:
        return self.destination_volume_group_id if self.is_group else self.destination_volume_id

    @property
    def error(self) -> dict | None:
        if not self.error_code:
            return None
        return {"code": self.error_code, "message": self.error_message,
                "arguments": self.error_arguments}


class CopiedExtent(models.Model):
    """A checkpoint: [start, end) reached the destination's disk, with its chunk digests.

    Written only after the destination was flushed (fdatasync), so a crash never records a
    range that is not on disk. ``digests`` has one xxh3-128 per ``chunk_size`` chunk of the
    range, or "" for a chunk that is all zeros (written as a hole).
    """

    session = models.ForeignKey(ImportSession, on_delete=models.CASCADE,
                                related_name="copied_extents")
    start = models.BigIntegerField()
    end = models.BigIntegerField()
    chunk_size = models.PositiveIntegerField()
    digests = models.JSONField(default=list)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "start"]
        constraints = [models.UniqueConstraint(fields=["session", "start"],
                                               name="unique_copied_extent_start")]

    def __str__(self):
        return f"{self.session_id}: [{self.start}, {self.end})"


class TransferSample(models.Model):
    """A session's transfer rate at one moment: the history the charts draw. Written at
    most every FERRY_SAMPLE_SECONDS per session, pruned after FERRY_SAMPLE_RETENTION_DAYS
    (services.samples)."""

    session = models.ForeignKey(ImportSession, on_delete=models.CASCADE,
                                related_name="transfer_samples")
    timestamp = models.DateTimeField(db_index=True)
    bytes_per_second = models.BigIntegerField()
    copied_bytes = models.BigIntegerField()

    class Meta:
        ordering = ["session", "timestamp"]
        indexes = [models.Index(fields=["session", "timestamp"],
                                name="sample_session_time")]

    def __str__(self):
        return f"{self.session_id} at {self.timestamp}: {self.bytes_per_second} B/s"


class EventOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused"


class ImportEvent(models.Model):
    """The audit trail. It keeps the session's name, so it outlives the session."""

    session = models.ForeignKey(ImportSession, on_delete=models.SET_NULL, null=True,
                                blank=True, related_name="events")
    session_name = models.CharField(max_length=255, db_index=True, blank=True)
    # What an event is about when it is not a session: "remote system array-1",
    # "host esx-01", "login", or the request path of a refused API call.
    subject = models.CharField(max_length=255, blank=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                              null=True, blank=True, related_name="import_events")
    actor_name = models.CharField(max_length=150, help_text='A username or "system".')
    action = models.CharField(max_length=64)
    from_state = models.CharField(max_length=32, blank=True)
    to_state = models.CharField(max_length=32, blank=True)
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=EventOutcome.choices,
                               default=EventOutcome.SUCCEEDED)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self):
        about = self.session_name or self.subject
        return f"{about}: {self.action} {self.from_state}→{self.to_state}"


class IdempotencyRecordQuerySet(models.QuerySet):
    def expired(self, now=None):
        """Records older than FERRY_IDEMPOTENCY_HOURS: their keys may be used afresh."""
        age = timedelta(hours=settings.FERRY_IDEMPOTENCY_HOURS)
        return self.filter(created__lt=(now or timezone.now()) - age)


class IdempotencyRecord(models.Model):
    """The first response to a POST sent with an ``Idempotency-Key``, kept for replays."""

    objects = IdempotencyRecordQuerySet.as_manager()

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="idempotency_records")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=1000)
    request_hash = models.CharField(max_length=64)
    # None while the first request is still being handled.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"],
                                               name="unique_idempotency_key_per_user")]

    def __str__(self):
        return f"{self.user_id}:{self.key}"


SEVERITY_CHOICES = [(severity.value, severity.value) for severity in states.Severity]


class AlertState(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    CLEARED = "CLEARED", "Cleared"


class AlertResource(models.TextChoices):
    """What an alert (or a job) is about, with PowerStore's resource type names."""

    IMPORT_SESSION = "import_session", "Import session"
    REMOTE_SYSTEM = "remote_system", "Remote system"
    STORAGE_NODE = "storage_node", "Storage node"


class Alert(models.Model):
    """Something an operator should know or act on, raised and cleared by the services
    (importer.services.alerts); PowerStore's ``alert`` fields. At most one active alert per
    resource and event code: a condition that persists updates it, never repeats it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_code = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=SEVERITY_CHOICES)
    resource_type = models.CharField(max_length=32, choices=AlertResource.choices)
    resource_id = models.CharField(max_length=64)
    resource_name = models.CharField(max_length=255)
    description_l10n = models.TextField()
    state = models.CharField(max_length=16, choices=AlertState.choices,
                             default=AlertState.ACTIVE)
    generated_timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    last_update_timestamp = models.DateTimeField(default=timezone.now)
    cleared_timestamp = models.DateTimeField(null=True, blank=True)
    is_acknowledged = models.BooleanField(default=False)
    acknowledged_timestamp = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-generated_timestamp"]
        constraints = [models.UniqueConstraint(
            fields=["resource_type", "resource_id", "event_code"],
            condition=Q(state="ACTIVE"), name="one_active_alert_per_resource_and_code")]
        indexes = [models.Index(fields=["state", "is_acknowledged"],
                                name="alert_state_acknowledged")]

    def __str__(self):
        return f"{self.severity}: {self.resource_name}: {self.event_code}"

    @property
    def tone(self) -> str:
        return states.SEVERITY_TONES[states.Severity(self.severity)]

    @property
    def is_active(self) -> bool:
        return self.state == AlertState.ACTIVE


class JobState(models.TextChoices):
    QUEUED = "Queued", "Queued"
    RUNNING = "Running", "Running"
    COMPLETED = "Completed", "Completed"
    FAILED = "Failed", "Failed"


JOB_TONES = {JobState.QUEUED: "neutral", JobState.RUNNING: "info",
             JobState.COMPLETED: "success", JobState.FAILED: "danger"}


class Job(models.Model):
    """One background job, as PowerStore's ``job`` resource: what it acts on, its state,
    step and progress, when it ran, and its outcome (``response_body``: the error of a
    failed job). Written by the services only (importer.services.job_records)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource_type = models.CharField(max_length=32, choices=AlertResource.choices)
    resource_action = models.CharField(max_length=32)
    resource_id = models.CharField(max_length=64)
    resource_name = models.CharField(max_length=255, blank=True)
    # The session a session job works for, to link it and find its open job quickly.
    session = models.ForeignKey(ImportSession, on_delete=models.SET_NULL, null=True,
                                blank=True, related_name="jobs")
    description_l10n = models.CharField(max_length=500)
    state = models.CharField(max_length=16, choices=JobState.choices,
                             default=JobState.QUEUED, db_index=True)
    step = models.CharField(max_length=255, blank=True)
    progress_percentage = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_time = models.DateTimeField(default=timezone.now, db_index=True)
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True, db_index=True)
    response_body = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_time"]
        indexes = [models.Index(fields=["resource_type", "resource_id", "state"],
                                name="job_resource_state")]

    def __str__(self):
        return f"{self.description_l10n} ({self.state})"

    @property
    def tone(self) -> str:
        return JOB_TONES[JobState(self.state)]

    @property
    def is_finished(self) -> bool:
        return self.state in (JobState.COMPLETED, JobState.FAILED)

    @property
    def duration(self) -> timedelta | None:
        if self.start_time is None:
            return None
        return (self.end_time or timezone.now()) - self.start_time

    @property
    def error(self) -> dict | None:
        return (self.response_body or {}).get("error")
