"""The pages: the agent panel, the wallboard, the contact form, and their files.

``presence/static/`` ships with the package; a page missing from an
installation answers a 404 problem rather than a stack trace.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from presence.problems import Problem

STATIC = Path(str(resources.files("presence").joinpath("static")))


def _page(name: str) -> Route:
    async def page(request: Request) -> Response:
        path = STATIC / f"{name}.html"
        if not path.exists():
            raise Problem(404, f"the {name} page is not installed", code="not_found")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    return Route(f"/{name}", page)


PAGES: list[BaseRoute] = [_page("agent"), _page("wallboard"), _page("contact")]
HOME: list[BaseRoute] = [
    Route("/", lambda request: RedirectResponse("/wallboard")),
    Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
]
