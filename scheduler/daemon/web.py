"""The daemon's read-only web page, on the API's port: runs, a run, a pipeline run's DAG, spend and
budgets, shapes and their queues (templates under web_assets/, drawn by the server with Jinja2; a
little JavaScript fetches each view and keeps it live).

Every route is a GET: nothing here changes state. A browser's navigation cannot carry a bearer token,
so a page is served in two parts:
- the *shell* (the layout, the navigation, the token form) and the static files hold no data: served to
  whoever may reach the port, after the same Host check as the API (no DNS rebinding on loopback);
- the *view* with the data (``/web/f/...``) is fetched by the shell's script with the token, kept in the
  tab's sessionStorage, in the Authorization header (never in a URL): the same rules as the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from . import web_pages

ASSETS = Path(__file__).with_name("web_assets")
HTML = "text/html; charset=utf-8"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    # the page's own script and style only: a run's name or log line can never become code
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Page:
    """A shell: the layout around one view, and where its script fetches the view from."""

    title: str
    nav: str
    view: str  # the view's URL, the path's groups substituted in


@dataclass(frozen=True)
class WebRoute:
    pattern: str
    public: bool  # no data in the answer: no token needed (the Host check still applies)
    serve: Callable[..., tuple[int, str, bytes]]


def route(path: str) -> tuple[WebRoute, tuple[str, ...]] | None:
    for candidate in ROUTES:
        match = re.fullmatch(candidate.pattern, path)
        if match:
            return candidate, match.groups()
    return None


@lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, FileSystemLoader

    from ..core.clock import iso
    from ..core.durations import format_duration
    from ..reporting.views import gib, money, percent

    env = Environment(loader=FileSystemLoader(ASSETS / "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, duration=format_duration, percent=percent, mem=gib,
                       when=lambda dt: (iso(dt) or "-").replace("T", " ").split(".")[0].removesuffix("Z"))
    return env


def render(template: str, context: dict[str, Any]) -> bytes:
    return environment().get_template(template).render(**context).encode()


def _shell(page: Page) -> Callable[..., tuple[int, str, bytes]]:
    def serve(_daemon, _query: str, *groups: str) -> tuple[int, str, bytes]:
        view = page.view.format(*groups)
        return 200, HTML, render("shell.html", {"page": page, "view": view, "ident": groups[0] if groups else None})

    return serve


def _view(build: Callable[..., tuple[str, dict[str, Any]]]) -> Callable[..., tuple[int, str, bytes]]:
    def serve(daemon, query: str, *groups: str) -> tuple[int, str, bytes]:
        template, context = build(daemon, query, *groups)
        return 200, HTML, render(template, context)

    return serve


@lru_cache(maxsize=None)
def _static_file(name: str) -> tuple[str, bytes] | None:
    path = ASSETS / "static" / name
    if path.suffix not in STATIC_TYPES or not path.is_file():
        return None
    return STATIC_TYPES[path.suffix], path.read_bytes()


def _static(_daemon, _query: str, name: str) -> tuple[int, str, bytes]:
    found = _static_file(name)
    if found is None:
        from ..core.errors import NotFound

        raise NotFound(f"no static file {name!r}")
    return 200, found[0], found[1]


RUN_ID = r"([\w-]{1,32})"
ROUTES = [
    WebRoute(r"/|/web|/web/runs", True, _shell(Page("Runs", "runs", "/web/f/runs"))),
    WebRoute(rf"/web/runs/{RUN_ID}", True, _shell(Page("Run", "runs", "/web/f/runs/{0}"))),
    WebRoute(r"/web/pipelines", True, _shell(Page("Pipeline runs", "pipelines", "/web/f/pipelines"))),
    WebRoute(rf"/web/pipeline-runs/{RUN_ID}", True,
             _shell(Page("Pipeline run", "pipelines", "/web/f/pipeline-runs/{0}"))),
    WebRoute(r"/web/spend", True, _shell(Page("Spend", "spend", "/web/f/spend"))),
    WebRoute(r"/web/shapes", True, _shell(Page("Shapes", "shapes", "/web/f/shapes"))),
    WebRoute(r"/web/static/([a-z0-9_-]{1,40}\.[a-z]{2,4})", True, _static),
    WebRoute(r"/web/f/runs", False, _view(web_pages.runs_view)),
    WebRoute(rf"/web/f/runs/{RUN_ID}", False, _view(web_pages.run_view)),
    WebRoute(r"/web/f/pipelines", False, _view(web_pages.pipelines_view)),
    WebRoute(rf"/web/f/pipeline-runs/{RUN_ID}", False, _view(web_pages.pipeline_view)),
    WebRoute(r"/web/f/spend", False, _view(web_pages.spend_view)),
    WebRoute(r"/web/f/shapes", False, _view(web_pages.shapes_view)),
]
