from __future__ import annotations

from django.urls import path

from tests.django_project import views

urlpatterns = [
    path("pizza", views.pizza),
    path("pasta", views.pasta),
    path("icecream", views.IceCream.as_view()),
    path("async-icecream", views.AsyncIceCream.as_view()),
    path("stacked", views.stacked),
    path("plan", views.plan),
    path("plain", views.plain),
    path("plain-async", views.plain_async),
    path("healthz", views.healthz),
    path("raises", views.raises),
    path("api/orders", views.Orders.as_view()),
    path("api/menu", views.Menu.as_view()),
]
