"""The bucketcore demo as a Django project (see settings.py and views.py)."""
