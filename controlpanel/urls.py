from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import path, register_converter
from django.views.generic import RedirectView

from . import embedviews, health, stream, views


class _OneOf:
    """A path converter that accepts one of a fixed set of words."""

    regex = ""

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


def one_of(*words: str) -> type[_OneOf]:
    return type("OneOf", (_OneOf,), {"regex": "|".join(words)})


register_converter(one_of("hangup", "hold", "retrieve", "stoprecord", "startrecord"), "call_action")
register_converter(one_of("campaigns", "queues", "users", "resultcodes"), "directory")


class CallIdConverter:
    """A call id: digits that fit a 64-bit integer (longer ones are a 404, not a 500)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(CallIdConverter, "call_id")

urlpatterns = [
    path("", views.panel, name="panel"),
    path("panel/workspace", views.workspace, name="workspace"),
    path("panel/stream", stream.stream, name="stream"),
    path("panel/ready", views.go_ready, name="go-ready"),
    path("panel/dial", views.dial, name="dial"),
    path(
        "panel/calls/<call_id:call_id>/<call_action:method>", views.call_action, name="call-action"
    ),
    path("panel/calls/<call_id:call_id>/dispose", views.dispose, name="dispose"),
    path("panel/calls/<call_id:call_id>/lead", views.lead_panel, name="lead-panel"),
    path("panel/calls/<call_id:call_id>/changelead", views.change_lead, name="change-lead"),
    path("panel/calls/<call_id:call_id>/newlead", views.new_lead, name="new-lead"),
    path("panel/calls/<call_id:call_id>/transfer", views.transfer_start, name="transfer-start"),
    path("panel/transfer/complete", views.transfer_complete, name="transfer-complete"),
    path("panel/directory/<directory:kind>", views.directory_panel, name="directory"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="panel/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("embed/<slug:tenant_slug>/", embedviews.embedded, name="embed"),
    path("embed/<slug:tenant_slug>/launch", embedviews.launch, name="embed-launch"),
    path("embed/<slug:tenant_slug>/resume", embedviews.resume, name="embed-resume"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
]
