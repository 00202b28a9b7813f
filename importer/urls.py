"""The dashboard's URLs (namespace ``importer``)."""

from django.urls import path

from importer import views

app_name = "importer"

urlpatterns = [
    path("", views.session_list, name="session-list"),
    path("imports/<int:pk>/", views.session_detail, name="session-detail"),
    path("imports/<int:pk>/row/", views.session_row, name="session-row"),
    path("imports/<int:pk>/actions/<str:action>/", views.session_action,
         name="session-action"),
]
