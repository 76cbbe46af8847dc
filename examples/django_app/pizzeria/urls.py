"""The demo's routes."""

from __future__ import annotations

from django.urls import path

from pizzeria import views

urlpatterns = [
    path("", views.index),
    path("pizza", views.pizza),
    path("pasta", views.pasta),
    path("icecream", views.IceCream.as_view()),
    path("healthz", views.healthz),
]
