"""The dashboard's URLs (namespace ``importer``)."""

from django.urls import path

from importer import chart_views, views, views_monitoring

app_name = "importer"

urlpatterns = [
    path("", views.session_list, name="session-list"),
    path("imports/new/", views.import_create, name="import-create"),
    path("imports/counts/", views.import_counts, name="import-counts"),
    path("imports/changes/", views.session_changes, name="session-changes"),
    path("imports/bulk/<str:action>/", views.bulk_action, name="bulk-action"),
    path("imports/<int:pk>/", views.session_detail, name="session-detail"),
    path("imports/<int:pk>/summary/", views.session_summary, name="session-summary"),
    path("imports/<int:pk>/row/", views.session_row, name="session-row"),
    path("imports/<int:pk>/rates.json", chart_views.session_rates, name="session-rates"),
    path("imports/<int:pk>/schedule/", views.session_schedule, name="session-schedule"),
    path("imports/<int:pk>/actions/<str:action>/", views.session_action,
         name="session-action"),
    path("remote-systems/", views.system_list, name="system-list"),
    path("remote-systems/new/", views.system_edit, name="system-create"),
    path("remote-systems/<int:pk>/edit/", views.system_edit, name="system-edit"),
    path("remote-systems/<int:pk>/delete/", views.system_delete, name="system-delete"),
    path("remote-systems/<int:pk>/discover/", views.system_discover, name="system-discover"),
    path("storage-nodes/", views.node_list, name="node-list"),
    path("hosts/", views.host_list, name="host-list"),
    path("hosts/new/", views.host_edit, name="host-create"),
    path("hosts/<int:pk>/edit/", views.host_edit, name="host-edit"),
    path("overview/", chart_views.overview, name="overview"),
    path("overview/throughput.json", chart_views.overview_throughput,
         name="overview-throughput"),
    path("hosts/<int:pk>/delete/", views.host_delete, name="host-delete"),
    path("events/", views.event_list, name="event-list"),
    path("events.csv", views.event_export, name="event-export"),
    path("alerts/", views_monitoring.alert_list, name="alert-list"),
    path("alerts/acknowledge/", views_monitoring.alert_acknowledge, name="alert-acknowledge"),
    path("alerts/bell/", views_monitoring.alert_bell, name="alert-bell"),
    path("jobs/", views_monitoring.job_list, name="job-list"),
]
