"""The yardstick of ``api_load.py``: a Litestar app whose one route answers the very bytes of an
Arbiter answer, held in memory, run by uvicorn exactly as ``arbiter api`` is run.

Why a separate process with one route: it is the least a Litestar route can do for the same
request and the same response size (no database, no encoding, no guard, no middleware), so
"Arbiter's requests/s over this one's" says how close the hot read path is to the framework's
own floor, and both suffer the same machine load when measured in the same run. The uvicorn
settings mirror ``services.api.app.make_server`` (host, ``log_level="warning"``,
``lifespan="on"``, ``access_log=False``, one worker, the default loop and HTTP
implementation): change one there, change it here.

    python benchmarks/same_bytes_app.py --port 8001 --path /leaderboard --body answer.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from litestar import Litestar, MediaType, Response, get


def same_bytes_app(path: str, body: bytes) -> Litestar:
    """One GET route at ``path`` (any query string) answering ``body`` as JSON."""

    @get(path, media_type=MediaType.JSON, sync_to_thread=False)
    def answer() -> Response[bytes]:
        return Response(content=body, media_type=MediaType.JSON)

    return Litestar(route_handlers=[answer])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True, help="the route's path, e.g. /leaderboard")
    p.add_argument("--body", type=Path, required=True, help="file holding the answer's bytes")
    args = p.parse_args()
    app = same_bytes_app(args.path, args.body.read_bytes())
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
