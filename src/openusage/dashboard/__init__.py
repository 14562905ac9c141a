"""The usage dashboard: static pages served at ``/``, reading the server's own public API.

No build step: the page, its script and the vendored chart library (uPlot, MIT, from the
npm registry) ship in ``static/``. Nothing is fetched from another origin, and the
Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..catalogue import USAGE_ENDPOINTS, USAGE_LIMITS

STATIC = Path(str(resources.files("openusage.dashboard").joinpath("static")))
#: the page may load and call only its own origin; no inline scripts
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def catalogue_document() -> bytes:
    """What the page needs to know of the usage kinds: their groupings, metrics and filters."""
    kinds = [
        {
            "name": e.name,
            "group_fields": list(e.group_fields),
            "metrics": list(e.metric_names),
            "filters": list(e.filters),
        }
        for e in USAGE_ENDPOINTS
    ]
    limits = {width: limit.maximum for width, limit in USAGE_LIMITS.items()}
    return orjson.dumps({"kinds": kinds, "limits": limits})


def dashboard_routes() -> list[BaseRoute]:
    catalogue = catalogue_document()

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def kinds(request: Request) -> Response:
        return Response(catalogue, media_type="application/json", headers=SECURITY_HEADERS)

    return [
        Route("/", page, methods=["GET"]),
        Route("/dashboard/catalogue.json", kinds, methods=["GET"]),
        Mount("/dashboard", StaticFiles(directory=STATIC), name="dashboard"),
    ]
