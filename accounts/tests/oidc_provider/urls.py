from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import include, path
from oauth2_provider.models import get_application_model


def cognito_logout(request: HttpRequest) -> HttpResponse:
    """Cognito's hosted-UI `/logout`: `client_id` and a registered `logout_uri`."""
    application = (
        get_application_model().objects.filter(client_id=request.GET.get("client_id", "")).first()
    )
    target = request.GET.get("logout_uri", "")
    if application is None or target not in application.post_logout_redirect_uris.split():
        return HttpResponseBadRequest("unknown client_id or logout_uri")
    logout(request)
    return HttpResponseRedirect(target)


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("login/", LoginView.as_view(), name="login"),
    path("logout", cognito_logout, name="cognito-logout"),
]
