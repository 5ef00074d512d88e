"""The pages for people: the front page (/), the explorer (/explore: a map, a chart and
an event's claims, made in the browser from the public API by api/static/conflictkb/
explore.js), Swagger UI (/docs) and GraphiQL (/graphql), served from files this package
ships, so they work with no internet.

Why this shape: the strict Content-Security-Policy of api/security_headers.py allows a
page what its HTML names. Here no page has an inline script or style: each page's code
and CSS are files under /static (api/static/: ours, and the vendored GraphiQL and React
of scripts/vendor_assets.py; Swagger UI from the swagger-ui-bundle-v2 package), so a
page's policy is 'self' for scripts and styles, nothing else (GraphiQL's adds
'unsafe-inline' for styles, never scripts: its dialogs add a <style> as they open). Anything a page's code
needs from the server (Swagger UI's settings, GraphiQL's examples) travels in data-*
attributes, which jinja2 escapes like all the text it puts in a page. The front page's
policy is made from the page rendered without data (FRONT_PAGE_WITHOUT_DATA): no
figure can change what it allows.

Every file a page names is cached for a year (`immutable`), since a new version is a new
URL: the vendored ones are under a directory named by their version, and ours are named
with their content's hash (`/static/conflictkb/explore.js?v=<hash>`, static() in render).
A browser that has them asks for none of them again; the page itself is revalidated, so
it names a changed file's new hash at once. Ours asked for without the current hash (an
old page, a hand-typed URL) are revalidated (their ETag answers 304 while unchanged).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import swagger_ui_default_parameters
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader
from starlette.staticfiles import StaticFiles
from starlette.types import Scope
from swagger_ui_bundle import swagger_ui_path

from api.deps import request_connection
from api.security_headers import Page, PageNeeds
from db.filters import FILTER_FIELDS
from db.queries.overview import overview
from schema.examples import EXAMPLES

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
VENDOR_MANIFEST = STATIC_DIR / "vendor" / "manifest.json"
STATIC_PATH = "/static"
GRAPHQL_PATH = "/graphql"
EXPLORE_PATH = "/explore"
# (the package's directory is named by Swagger UI's version: swagger-ui-5.31.0)
SWAGGER_UI_PATH = f"{STATIC_PATH}/{Path(swagger_ui_path).name}"
IMMUTABLE = "public, max-age=31536000, immutable"

TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                        trim_blocks=True, lstrip_blocks=True)

# Example requests of the front page, by what they show (the GraphQL ones: schema/examples.py).
REST_EXAMPLES = (
    ("Air strikes in Hasakah province, under any spelling of its name",
     "/v1/events?" + urlencode({"admin1": "Hasakah", "sub_event_type": "Air/drone strike"})),
    ("Strikes per province and month",
     "/v1/stats/events?" + urlencode({"group_by": "admin1,month",
                                      "sub_event_type": ["Air/drone strike", "Shelling/artillery/missile attack"]},
                                     doseq=True)),
    ("Deaths per province and year", "/v1/stats/events?" + urlencode({"group_by": "admin1,year"})),
    ("One event with every claim behind it", "/v1/events/conflictkb-seed:al-qasr-strike"),
    ("The Islamic State's events, by any of its names", "/v1/events?" + urlencode({"actor": "Daesh", "count": "true"})),
    ("Events with a contested attribution", "/v1/events?attribution=contested"),
)
EXPORTS = (("CSV", "/v1/events.csv"), ("GeoJSON", "/v1/events.geojson"), ("NDJSON", "/v1/events.ndjson"))
CHANGE_FEED = "/v1/changes"
OVERVIEW_CACHE_KEY = "overview"
# What the page shows before anything is loaded; its policy is made from this too.
FRONT_PAGE_WITHOUT_DATA = {"events": 0, "sources": [], "first_date": None, "last_date": None, "imports": []}


def content_version(path: Path) -> str:
    """A short hash of the file's content: the `v` of its URL (hashed again when the file
    changes, so a page rendered after an edit or a deploy names the new content)."""
    stat = path.stat()
    # (an editor that saves by renaming makes a new inode; one that writes in place, keeping
    # the size within the clock's tick, would keep the old hash until the process restarts)
    return _content_hash(path, stat.st_ino, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=128)
def _content_hash(path: Path, inode: int, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class AssetFiles(StaticFiles):
    """StaticFiles with a Cache-Control of `immutable` where the URL names a version that
    cannot change, otherwise no-cache. Where the version is, by `versions`:
    - "mount": in the mount's own path (Swagger UI's swagger-ui-5.31.0), for every file;
    - "directory": in each file's directory (vendor/leaflet/1.9.4/leaflet.js), so a file
      at the top (vendor/manifest.json) is revalidated;
    - "content": `?v=` with the file's content_version, as static() names ours."""

    def __init__(self, directory: Path, *, versions: Literal["mount", "directory", "content"]):
        super().__init__(directory=directory)
        self._versions = versions

    def _names_its_version(self, full_path, scope: Scope) -> bool:
        if self._versions == "mount":
            return True
        if self._versions == "directory":
            return os.sep in self.get_path(scope)
        asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [])
        return asked == [content_version(Path(full_path))]

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200):
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = IMMUTABLE if self._names_its_version(full_path, scope) else "no-cache"
        return response


@cache
def vendored() -> dict[str, dict[str, Any]]:
    """scripts/vendor_assets.py's record of the vendored packages (read once)."""
    return json.loads(VENDOR_MANIFEST.read_text())


def root_of(scope: Scope) -> str:
    """The path the app is served under ('' at the root), as the server passed it."""
    return scope.get("root_path", "").rstrip("/")


def render(template: str, root: str, **context: Any) -> str:
    """A page under the root path `root`: its templates name every URL through `url`,
    `static`, `vendor` and `swagger_ui`."""
    def vendor(package: str, file: str) -> str:
        return f"{root}{STATIC_PATH}/vendor/{vendored()[package]['directory']}/{file}"

    return TEMPLATES.get_template(template).render(
        url=lambda path: root + path, vendor=vendor,
        static=lambda file: f"{root}{STATIC_PATH}/{file}?v={content_version(STATIC_DIR / file)}",
        swagger_ui=lambda file: f"{root}{SWAGGER_UI_PATH}/{file}", **context)


def graphiql_url(root: str, query: str) -> str:
    """GraphiQL with `query` in its editor (its page reads `?q=`, as strawberry's did: a
    GET with `?query=` is a GraphQL request, answered with its result)."""
    return f"{root}{GRAPHQL_PATH}?{urlencode({'q': query})}"


def render_front_page(root: str, figures: dict[str, Any]) -> str:
    graphql_examples = [(example, graphiql_url(root, example.query)) for example in EXAMPLES]
    return render("front.html", root, figures=figures, rest_examples=REST_EXAMPLES, exports=EXPORTS,
                  change_feed=CHANGE_FEED, graphql_examples=graphql_examples)


def render_graphiql(root: str) -> str:
    examples = [{"title": e.title, "description": e.description, "query": e.query, "operationName": e.operation_name}
                for e in EXAMPLES]
    return render("graphiql.html", root, examples=json.dumps(examples))


@dataclass(frozen=True)
class ExplorerField:
    """A field of the explorer's filter form: a field of the event filter (db/filters.py),
    by its name, which the page's code sends to the API as it is. `widget`: a date, a
    text with suggestions from `suggest` (an API path and query: any name or alias the
    API finds), a choice (the filter's own choices, or the vocabulary the page asks the
    API for), or free text."""

    name: str
    label: str
    widget: Literal["date", "suggest", "choice", "text"]
    placeholder: str = ""
    suggest: str = ""

    @property
    def choices(self) -> tuple[str, ...]:
        return FILTER_FIELDS[self.name].choices


EXPLORER_FIELDS = (
    ExplorerField("date_from", "From", "date"),
    ExplorerField("date_to", "To", "date"),
    ExplorerField("country", "Country", "suggest", "Syria, SYR", "/places?kind=country"),
    ExplorerField("admin1", "Province", "suggest", "Hasakah", "/places?kind=admin1"),
    ExplorerField("event_type", "Event type", "choice"),
    ExplorerField("sub_event_type", "Sub-event type", "choice"),
    ExplorerField("actor", "Actor", "suggest", "any role, any name", "/actors"),
    ExplorerField("claimant", "Source", "suggest", "who made a claim", "/actors"),
    ExplorerField("attribution", "Attribution", "choice"),
    ExplorerField("q", "Text", "text", "words in summaries, quotes, place names"),
)
_not_filters = [field.name for field in EXPLORER_FIELDS if field.name not in FILTER_FIELDS]
assert not _not_filters, f"the explorer's form names fields the event filter does not have: {_not_filters}"


def render_explorer(root: str) -> str:
    return render("explore.html", root, fields=EXPLORER_FIELDS)


def swagger_ui_renderer(app: FastAPI) -> Callable[[str], str]:
    def render_swagger_ui(root: str) -> str:
        # FastAPI's own defaults and the app's swagger_ui_parameters, as its /docs would
        # use them; no validator badge (it loads an image from swagger.io).
        parameters = {**swagger_ui_default_parameters, **(app.swagger_ui_parameters or {}),
                      "url": root + app.openapi_url, "validatorUrl": None}
        return render("swagger_ui.html", root, title=f"{app.title} - Swagger UI", parameters=json.dumps(parameters))
    return render_swagger_ui


async def front_page_figures(request: Request) -> dict[str, Any]:
    """db/queries/overview.py's answer, kept under the data generation (db/cache.py)."""
    async def compute() -> dict[str, Any]:
        async with request_connection(request.app.state.engine) as conn:
            return await overview(conn)

    return await request.app.state.answer_cache.get_or_compute(OVERVIEW_CACHE_KEY, compute)


def install_pages(app: FastAPI, docs_path: str = "/docs") -> dict[str, Page]:
    """Mount the static files, add the front page and Swagger UI, and return every HTML
    page by path for the security headers (GraphiQL's page is rendered by the GraphQL
    router with render_graphiql, at GRAPHQL_PATH)."""
    router = APIRouter(include_in_schema=False)
    render_swagger_ui = swagger_ui_renderer(app)

    @router.get("/", response_class=HTMLResponse)
    async def front_page(request: Request):
        return HTMLResponse(render_front_page(root_of(request.scope), await front_page_figures(request)))

    @router.get(EXPLORE_PATH, response_class=HTMLResponse)
    async def explorer(request: Request):
        # The page is the same for every filter: its code reads the URL's query and asks
        # the API (which checks it and names what is wrong), so it can be cached whole.
        return HTMLResponse(render_explorer(root_of(request.scope)))

    @router.get(docs_path, response_class=HTMLResponse)
    async def swagger_ui(request: Request):
        return HTMLResponse(render_swagger_ui(root_of(request.scope)))

    app.include_router(router)
    # the versioned directories first: Starlette takes the first mount that matches
    app.mount(f"{STATIC_PATH}/vendor", AssetFiles(STATIC_DIR / "vendor", versions="directory"))
    app.mount(SWAGGER_UI_PATH, AssetFiles(Path(swagger_ui_path), versions="mount"))
    app.mount(STATIC_PATH, AssetFiles(STATIC_DIR, versions="content"), name="static")
    return {
        "/": (lambda root: render_front_page(root, FRONT_PAGE_WITHOUT_DATA), PageNeeds()),
        EXPLORE_PATH: (render_explorer, PageNeeds()),
        docs_path: (render_swagger_ui, PageNeeds()),
        # GraphiQL's CSS has its fonts inline; its dialogs (Radix) add a <style> element
        # as they open, to stop the page scrolling behind them, sized to the scrollbar
        GRAPHQL_PATH: (render_graphiql, PageNeeds(fonts=("data:",), inline_styles_at_run_time=True)),
    }
