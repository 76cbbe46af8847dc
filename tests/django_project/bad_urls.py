"""A URLconf whose limits the start-up check refuses."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path

from bucketcore.django import limit
from tests.django_project import views


def by_tenant(request: HttpRequest) -> Any:
    return 42  # a key is a str, bytes or None


@limit("3/minute", name="general")  # views.pizza says 2/minute
def general(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@limit("1/minute", key=by_tenant)
def tenant(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@limit(lambda request: "whenever", name="plan")
def plan(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("pizza", views.pizza),
    path("general", general),
    path("tenant", tenant),
    path("plan", plan),
]
