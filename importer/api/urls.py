"""/api/v1/: the resources, API tokens, the OpenAPI schema and its Swagger UI."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from importer.api import problems, views

app_name = "api"

router = DefaultRouter()
router.register("remote-systems", views.RemoteSystemViewSet, basename="remote-system")
router.register("source-volumes", views.SourceVolumeViewSet, basename="source-volume")
router.register("source-groups", views.SourceGroupViewSet, basename="source-group")
router.register("hosts", views.HostViewSet, basename="host")
router.register("volumes", views.VolumeViewSet, basename="volume")
router.register("volume-groups", views.VolumeGroupViewSet, basename="volume-group")
router.register("storage-nodes", views.StorageNodeViewSet, basename="storage-node")
router.register("import-sessions", views.ImportSessionViewSet, basename="import-session")
router.register("events", views.ImportEventViewSet, basename="event")

urlpatterns = [
    path("", include(router.urls)),
    path("auth/token/", views.TokenCreateView.as_view(), name="token-create"),
    path("auth/logout/", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("auth/logout-all/", views.TokenRevokeAllView.as_view(), name="token-revoke-all"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    # Last: any other /api/ path is a 404 problem, not an HTML page. [\s\S], not '.', so a
    # path holding a newline matches too (and not a (?s) flag, which reverse() refuses).
    re_path(r"^[\s\S]*$", problems.api_not_found),
]
