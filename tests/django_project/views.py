"""Views of every kind the Django integration limits."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bucketcore import Decision, Limit
from bucketcore.django import by_basic_auth, exempt, limit
from bucketcore.errors import RateLimited

PLANS = {"free": "1/minute", "pro": "3/minute"}


@limit("2/minute", name="general", key=by_basic_auth)
def pizza(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"food": "pizza"})


@limit("2/minute", name="general", key=by_basic_auth)
async def pasta(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"food": "pasta"})


@method_decorator(limit("1/minute", name="special"), name="get")
class IceCream(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse({"food": "icecream"})

    def post(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse({"posted": True})


@method_decorator(limit("1/minute", name="async-special"), name="get")
class AsyncIceCream(View):
    async def get(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse({"food": "icecream"})


@limit("5/minute", name="wide")
@limit("1/minute", name="narrow", methods="POST")
def stacked(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


@limit(lambda request: PLANS[request.headers.get("X-Plan", "free")], name="plan")
def plan(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


def plain(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


async def plain_async(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


@exempt
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def raises(request: HttpRequest) -> HttpResponse:
    # What ``rate_limited`` around a costly call raises when it is denied.
    raise RateLimited(Decision(False, 0, 2.5, 10.0, Limit(1, 10, name="smtp")))


class Orders(APIView):
    throttle_scope = "orders"

    def get(self, request: Request) -> Response:
        return Response({"orders": []})


class Menu(APIView):
    def get(self, request: Request) -> Response:
        return Response({"menu": ["pizza"]})
