"""The REST API (/api/v1/). Every write goes through importer.services, like the dashboard."""

from django.db.models import Count, Prefetch, Q
from drf_spectacular.utils import extend_schema, extend_schema_view
from knox.views import LoginView as KnoxLoginView
from knox.views import LogoutAllView, LogoutView
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from importer import audit, filters, roles, services, states
from importer.api import serializers as api
from importer.api.authentication import LockoutAwareBasicAuthentication
from importer.api.idempotency import IdempotentPostMixin
from importer.api.permissions import RolePermission
from importer.errors import ValidationError
from importer.models import (
    Host,
    ImportEvent,
    ImportSession,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
    StorageNode,
    Volume,
    VolumeGroup,
)
from importer.services.frontends import with_host_rates
from importer.states import UNFINISHED, Action


class FerryViewSet(IdempotentPostMixin, viewsets.GenericViewSet):
    permission_classes = [RolePermission]
    write_permission: str | None = None

    def get_write_permission(self) -> str | None:
        return self.write_permission

    def actor(self) -> services.Actor:
        return services.Actor.of(self.request)

    def valid_input(self, serializer_class, **kwargs) -> dict:
        serializer = serializer_class(data=self.request.data, **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class ReadOnlyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FerryViewSet):
    pass


# --- Remote systems ---------------------------------------------------------------------------

@extend_schema_view(create=extend_schema(request=api.RemoteSystemSerializer),
                    partial_update=extend_schema(request=api.RemoteSystemSerializer))
class RemoteSystemViewSet(ReadOnlyViewSet):
    """Arrays that hold source volumes: a folder of images (directory) or an NBD server
    (nbd). Deleting one is refused while import sessions use it."""

    queryset = RemoteSystem.objects.all()
    serializer_class = api.RemoteSystemSerializer
    filterset_fields = ["name", "status"]
    ordering_fields = ["id", "name", "created", "last_discovery_timestamp"]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_write_permission(self):
        return roles.OPERATE if self.action == "discover" else roles.MANAGE_SYSTEMS

    def create(self, request):
        data = self.valid_input(api.RemoteSystemSerializer)
        system = services.create_remote_system(
            name=data["name"], description=data.get("description", ""),
            driver_type=data["driver_type"], driver_settings=dict(data["driver_settings"]),
            actor=self.actor())
        return Response(self.get_serializer(system).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial=False):
        system = self.get_object()
        data = self.valid_input(api.RemoteSystemSerializer, instance=system, partial=partial)
        if data.get("driver_type", system.driver_type) != system.driver_type:
            raise ValidationError({"driver_type": [
                f"A remote system's driver cannot change (it is {system.driver_type}); "
                "add a new remote system instead."]})
        system = services.save_remote_system(
            system.pk, name=data.get("name", system.name),
            description=data.get("description", system.description),
            driver_settings=dict(data.get("driver_settings", system.driver_settings)),
            actor=self.actor())
        return Response(self.get_serializer(system).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    def destroy(self, request, pk=None):
        services.delete_remote_system(self.get_object().pk, actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: api.RemoteSystemSerializer})
    @action(detail=True, methods=["post"])
    def discover(self, request, pk=None):
        """Read the system again, in a worker: its status is "Discovering" until the job
        ends (then "OK" or "Unreachable" with the reason). New volumes and groups appear;
        missing ones go offline."""
        system = services.request_discovery(self.get_object().pk, actor=self.actor())
        return Response(self.get_serializer(system).data, status=status.HTTP_202_ACCEPTED)


class SourceVolumeViewSet(ReadOnlyViewSet):
    queryset = SourceVolume.objects.all()
    serializer_class = api.SourceVolumeSerializer
    filterset_class = filters.SourceVolumeFilter
    ordering_fields = ["name", "identifier", "size", "importable_criteria"]


class SourceGroupViewSet(ReadOnlyViewSet):
    queryset = SourceGroup.objects.all()
    serializer_class = api.SourceGroupSerializer
    filterset_class = filters.SourceGroupFilter
    ordering_fields = ["name", "identifier", "size", "importable_criteria"]


# --- Hosts and destinations -------------------------------------------------------------------

class HostViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
                  ReadOnlyViewSet):
    """Hosts that destination volumes are mapped to. Deleting one is refused while it is
    mapped or an unfinished import will map it."""

    queryset = Host.objects.all()
    serializer_class = api.HostSerializer
    filterset_fields = ["name", "os_type"]
    write_permission = roles.MANAGE_HOSTS
    ordering_fields = ["id", "name", "created"]

    def perform_create(self, serializer):
        serializer.instance = self._save(None, serializer.validated_data)

    def perform_update(self, serializer):
        merged = {**api.HostSerializer(serializer.instance).data, **serializer.validated_data}
        serializer.instance = self._save(serializer.instance.pk, merged)

    def perform_destroy(self, host):
        services.delete_host(host.pk, actor=self.actor())

    def _save(self, host_id, data) -> Host:
        return services.save_host(host_id, name=data["name"], os_type=data["os_type"],
                                  description=data.get("description", ""),
                                  initiators=data.get("initiators", []), actor=self.actor())


class VolumeViewSet(ReadOnlyViewSet):
    """Destination volumes. ``is_read_only`` stays true until the destination is enabled."""

    queryset = Volume.objects.prefetch_related("hosts")
    serializer_class = api.VolumeSerializer
    filterset_class = filters.VolumeFilter
    ordering_fields = ["id", "name", "size", "created"]


class VolumeGroupViewSet(ReadOnlyViewSet):
    queryset = VolumeGroup.objects.prefetch_related("volumes")
    serializer_class = api.VolumeGroupSerializer
    ordering_fields = ["id", "name", "created"]


class StorageNodeViewSet(ReadOnlyViewSet):
    """Worker hosts, each with its own pool: an import's destination lives on one of them.
    They register and report themselves; nothing here changes them."""

    queryset = StorageNode.objects.annotate(unfinished_sessions=Count(
        "import_sessions", filter=Q(import_sessions__state__in=UNFINISHED,
                                    import_sessions__source_volume__isnull=False)))
    serializer_class = api.StorageNodeSerializer
    filterset_fields = ["name"]
    ordering_fields = ["id", "name", "free_bytes", "last_heartbeat"]
    ordering = ["name"]


# --- Import sessions --------------------------------------------------------------------------

_ACTION_BODIES = {**{name: api.ForceSerializer for name in states.FORCEABLE_ACTIONS},
                  Action.ENABLE_DESTINATION_VOLUME: api.EnableDestinationSerializer}


def _action_endpoint(name: Action):
    """POST {id}/<action>/: run one operator action through the service layer (202)."""
    body = _ACTION_BODIES.get(name)

    def endpoint(self, request, pk=None):
        options = dict(self.valid_input(body)) if body else {}
        session = services.perform_action(self.get_object().pk, name, actor=self.actor(),
                                          **options)
        return Response(self.get_serializer(self.get_queryset().get(pk=session.pk)).data,
                        status=status.HTTP_202_ACCEPTED)

    endpoint.__name__ = name.value  # before @action, which routes by the function's name
    endpoint = action(detail=True, methods=["post"], url_path=name.value.replace("_", "-"),
                      url_name=name.value.replace("_", "-"))(endpoint)
    endpoint = extend_schema(summary=states.ACTIONS[name].summary, request=body,
                             responses={202: api.ImportSessionSerializer})(endpoint)
    return endpoint


@extend_schema_view(
    create=extend_schema(request=api.ImportSessionCreateSerializer,
                         responses={201: api.ImportSessionSerializer}),
    partial_update=extend_schema(request=api.ImportSessionUpdateSerializer),
    destroy=extend_schema(description="Only in the states the spec allows (finished, "
                                      "cancelled or failed). The audit trail stays."),
)
class ImportSessionViewSet(mixins.DestroyModelMixin, ReadOnlyViewSet):
    """Imports of one volume, or of a consistency group (its members are volume sessions
    that act only through their group)."""

    # The mover's bookkeeping is not part of the representation: not loaded for a list.
    _UNSHOWN = ("source_access_backup", "lease_owner", "lease_expires_at", "copy_seconds",
                "admitted_timestamp")
    # Prefetched into plain lists (to_attr): a related manager per row costs more than the
    # query itself on a page of 100 groups.
    _hosts = Prefetch("hosts", to_attr="listed_hosts")
    queryset = with_host_rates(ImportSession.objects.defer(*_UNSHOWN)).prefetch_related(
        _hosts, Prefetch("members", to_attr="listed_members", queryset=with_host_rates(
            ImportSession.objects.defer(*_UNSHOWN)).prefetch_related(_hosts)
            .order_by("name")))
    serializer_class = api.ImportSessionSerializer
    filterset_class = filters.ImportSessionFilter
    write_permission = roles.OPERATE
    ordering_fields = ["id", "name", "state", "created", "last_update_timestamp",
                       "progress_percentage", "total_bytes", "scheduled_timestamp"]
    ordering = ["-created", "-id"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_class(self):
        if self.action == "retrieve":
            return api.ImportSessionDetailSerializer
        return super().get_serializer_class()

    def create(self, request):
        data = self.valid_input(api.ImportSessionCreateSerializer)
        session = services.create_import(
            name=data["name"], description=data["description"],
            remote_system_id=data["remote_system"],
            source_resource_id=data["source_resource_id"], host_ids=data["host_ids"],
            consistency_group_member_host_ids=data["consistency_group_member_host_ids"],
            volume_group_name=data["volume_group_name"],
            automatic_cutover=data["automatic_cutover"],
            scheduled_timestamp=data["scheduled_timestamp"],
            throttle_bytes_per_second=data["throttle_bytes_per_second"],
            storage_node_id=data["storage_node"], actor=self.actor())
        return Response(self.get_serializer(self.get_queryset().get(pk=session.pk)).data,
                        status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        session = self.get_object()
        data = self.valid_input(api.ImportSessionUpdateSerializer)
        if "scheduled_timestamp" in data:
            services.modify_schedule(session.pk, data["scheduled_timestamp"],
                                     actor=self.actor())
        if "description" in data:
            services.describe_import(session.pk, data["description"], actor=self.actor())
        return Response(self.get_serializer(self.get_queryset().get(pk=session.pk)).data)

    def perform_destroy(self, session):
        services.delete_import(session.pk, actor=self.actor())

    # One endpoint per menu action, derived from states.ACTIONS.
    for _action in states.MENU_ACTIONS:
        locals()[_action.value] = _action_endpoint(_action)
    del _action

    @extend_schema(responses=api.ImportEventSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, ordering_fields=[])
    def events(self, request, pk=None):
        """The session's audit trail (a group's includes its members'), newest first."""
        session = self.get_object()
        events = filters.ImportEventFilter({"session": session.pk},
                                           queryset=ImportEvent.objects.all()).qs
        page = self.paginate_queryset(events)
        return self.get_paginated_response(api.ImportEventSerializer(page, many=True).data)


class ImportEventViewSet(ReadOnlyViewSet):
    """The audit log: every action and every refusal, with who and from where."""

    queryset = ImportEvent.objects.all()
    serializer_class = api.ImportEventSerializer
    filterset_class = filters.ImportEventFilter
    ordering_fields = ["id", "timestamp"]


# --- API tokens -------------------------------------------------------------------------------

class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as: Authorization: Token <token>. "
                                            "Shown once; Ferry keeps only its hash.")
    expiry = serializers.DateTimeField()


@extend_schema(request=None, responses={200: TokenSerializer})
class TokenCreateView(KnoxLoginView):
    """Log in with a password (HTTP Basic, or the browser's session) and get an API token."""

    authentication_classes = [LockoutAwareBasicAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request, format=None):
        response = super().post(request, format)
        audit.record("create_api_token", user=request.user,
                     actor_name=request.user.get_username(),
                     address=audit.client_address(request), subject="api token",
                     details={"expiry": response.data.get("expiry")})
        return response


@extend_schema(request=None, responses={204: None})
class TokenRevokeView(LogoutView):
    """Revoke the token this request is authenticated with."""


@extend_schema(request=None, responses={204: None})
class TokenRevokeAllView(LogoutAllView):
    """Revoke every token of the requesting user."""
