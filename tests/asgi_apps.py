"""Starlette and FastAPI apps behind RateLimitMiddleware, served by uvicorn in tests."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bucketcore.asgi import RateLimitMiddleware, by_user, rule

# Slow refill: no token comes back while a test runs, whatever the machine's speed.
RULES = [
    rule("/pizza", "3/hour", name="general", key=by_user),
    rule("/pasta", "3/hour", name="general", key=by_user),
    rule("/healthz"),
]


async def food(request: Request) -> JSONResponse:
    return JSONResponse({"food": request.url.path.strip("/")})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


starlette_app = RateLimitMiddleware(
    Starlette(routes=[Route("/pizza", food), Route("/pasta", food), Route("/healthz", healthz)]),
    rules=RULES,
)

fastapi_app = FastAPI()
fastapi_app.add_middleware(RateLimitMiddleware, rules=RULES)


@fastapi_app.get("/pizza")
async def fastapi_pizza() -> dict[str, str]:
    return {"food": "pizza"}


@fastapi_app.get("/pasta")
async def fastapi_pasta() -> dict[str, str]:
    return {"food": "pasta"}


@fastapi_app.get("/healthz")
async def fastapi_healthz() -> dict[str, str]:
    return {"status": "ok"}
