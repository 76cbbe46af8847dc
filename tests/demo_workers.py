"""The demo app as gunicorn serves it in tests, telling which worker answered."""

from __future__ import annotations

import os

from flask import Response

from tests.example_app import load_example

app = load_example().create_app()


@app.after_request
def served_by(response: Response) -> Response:
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response
