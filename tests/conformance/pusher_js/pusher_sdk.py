"""The official PyPI `pusher` SDK for the Node suite (`pusher_http_api.mjs`): one call per run.

`python pusher_sdk.py '{"host", "port", "app": {"id", "key", "secret"}, "secret"?, "call",
"args"}'` makes `pusher.Pusher(...).<call>(*args)` against Parley and prints `{"result": ...}`,
or `{"error": "<the SDK's exception class>", "message"}` when the SDK raised one of its errors
(how a backend learns that Parley refused its call).
"""

from __future__ import annotations

import json
import sys

import pusher
from pusher.errors import PusherError


def main(request: dict[str, object]) -> dict[str, object]:
    app = request["app"]
    assert isinstance(app, dict)
    secret = request.get("secret") or app["secret"]
    client = pusher.Pusher(
        str(app["id"]), app["key"], secret, host=request["host"], port=request["port"], ssl=False
    )
    call, args = request["call"], request["args"]
    assert isinstance(call, str) and isinstance(args, list)
    try:
        return {"result": getattr(client, call)(*args)}
    except PusherError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
