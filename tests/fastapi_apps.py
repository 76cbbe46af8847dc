"""A FastAPI app limited by the RateLimit dependency, served by uvicorn in tests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request

from bucketcore import Decision
from bucketcore.fastapi import RateLimit, by_user

PLANS = {"free": "2/minute", "pro": "10/minute"}


def plan_of(request: Request) -> str:
    """The caller's plan, from a header (in a real app: from its account)."""
    return PLANS.get(request.headers.get("x-plan", "free"), PLANS["free"])


app = FastAPI()
by_plan = RateLimit(plan_of, name="plan", key=by_user)
router = APIRouter(prefix="/api", dependencies=[Depends(by_plan)])
hourly = RateLimit("3/hour", key=by_user)


@router.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"item": item_id}


app.include_router(router)


@app.get("/pizza", dependencies=[Depends(RateLimit("7/30s", name="fa-general", key=by_user))])
async def pizza() -> dict[str, str]:
    return {"food": "pizza"}


@app.get("/left")
async def left(decision: Annotated[Decision, Depends(hourly)]) -> dict[str, int]:
    return {"left": decision.remaining}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
