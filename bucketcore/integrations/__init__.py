"""What connects the core to other code (docs/design.md §5).

``http`` is the one HTTP decision step (key, limits, decision or store
error → hook event, headers, 429/503 answer) and ``policy`` what it is
asked to limit (specs fixed or per request, checked at start-up); ``flask``, ``asgi`` and
``guard`` (``rate_limited``) read their request and write their response
around it. ``hooks`` and ``prometheus`` report decisions; ``cli`` is the
``bucketcore`` command. The core imports nothing from here, and importing
this package imports no framework.

>>> from bucketcore.integrations.http import limits_from
>>> limits_from("7/30s", name="general")[0].label
'general'
"""
