"""The bucketcore demo: a Flask app with per-user rate limits.

    /          100 per hour per user
    /pizza     7 per 30 s per user, shared with /pasta (the pool "general")
    /pasta     the same pool as /pizza
    /icecream  1 per 10 s per user, its own pool "special"
    /healthz   never limited

The user is the HTTP basic-auth user name (any password: this demo names
clients, it does not authenticate them); without credentials the answer is
401. The backend is ``BUCKETCORE_URL`` (default ``memory://``), so the same
app runs on ``rocksdb://./demo-data`` or ``redis://localhost:6379/0``.

Run it with ``make demo``, or ``python examples/web_app.py [--host H] [--port P]``.
"""

from __future__ import annotations

import argparse
import os

from flask import Flask, Response, jsonify, request

from bucketcore import Limiter
from bucketcore.flask import BucketCore, by_user, exempt, limit

GENERAL = "7/30s"  # one pool for /pizza and /pasta
SPECIAL = "1/10s"


def create_app(limiter: Limiter | None = None) -> Flask:
    """The demo app; tests pass a ``Limiter`` with a fake clock."""
    app = Flask(__name__)
    if limiter is None:
        limiter = Limiter.from_env("BUCKETCORE_URL")

    # Registered before the limiter's own check, so a request without
    # credentials is told to authenticate (401) rather than counted.
    @app.before_request
    def require_user() -> Response | None:
        if request.endpoint in (None, "healthz", "static") or by_user() is not None:
            return None
        response = jsonify(error="unauthorized", message="use HTTP basic auth: curl -u alice:x")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="bucketcore demo"'
        return response

    BucketCore(app, limiter=limiter, key=by_user)

    @app.get("/")
    @limit("100/hour", name="index")
    def index() -> Response:
        return jsonify(message="Welcome! Try /pizza, /pasta and /icecream.")

    @app.get("/pizza")
    @limit(GENERAL, name="general")
    def pizza() -> Response:
        return jsonify(food="pizza")

    @app.get("/pasta")
    @limit(GENERAL, name="general")
    def pasta() -> Response:
        return jsonify(food="pasta")

    @app.get("/icecream")
    @limit(SPECIAL, name="special")
    def icecream() -> Response:
        return jsonify(food="icecream")

    @app.get("/healthz")
    @exempt
    def healthz() -> Response:
        return jsonify(status="ok")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    url = os.environ.get("BUCKETCORE_URL") or "memory://"
    base = f"http://{args.host}:{args.port}"
    print(f"bucketcore demo on {base} (store: {url}). Try:")
    print(f"  curl -i -u alice:x {base}/pizza")
    print(
        "  for i in $(seq 7); do curl -s -o /dev/null -w '%{http_code} ' "
        f"-u alice:x {base}/pasta; done; echo"
    )
    print(f"  curl -i -u bob:x {base}/icecream")
    create_app().run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
