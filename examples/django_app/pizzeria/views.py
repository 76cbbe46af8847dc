"""The demo's views: the pools and answers of examples/web_app.py.

/          100 per hour per user
/pizza     7 per 30 s per user, shared with /pasta (the pool "general")
/pasta     the same pool as /pizza (an async view)
/icecream  1 per 10 s per user, its own pool "special" (a class-based view)
/healthz   never limited
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View

from bucketcore.django import by_basic_auth, exempt, limit

GENERAL = "7/30s"  # one pool for /pizza and /pasta
SPECIAL = "1/10s"


def require_user(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[..., HttpResponse]:
    """Middleware: no basic-auth user name, no pizza (any password will do)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz" or by_basic_auth(request) is not None:
            return get_response(request)
        response = JsonResponse(
            {"error": "unauthorized", "message": "use HTTP basic auth: curl -u alice:x"},
            status=401,
        )
        response["WWW-Authenticate"] = 'Basic realm="bucketcore demo"'
        return response

    return middleware


@limit("100/hour", name="index")
def index(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"message": "Welcome! Try /pizza, /pasta and /icecream."})


@limit(GENERAL, name="general")
def pizza(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"food": "pizza"})


@limit(GENERAL, name="general")
async def pasta(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"food": "pasta"})


@method_decorator(limit(SPECIAL, name="special"), name="get")
class IceCream(View):  # type: ignore[misc]  # Django has no type hints
    def get(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse({"food": "icecream"})


@exempt
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})
