"""The site's URLs plus one view that fails, for tests of what a server error sends."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from hobbies.urls import urlpatterns as site_urlpatterns


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", boom), *site_urlpatterns]
