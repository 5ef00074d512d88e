"""Security headers on every answer, a strict Content-Security-Policy on the HTML pages.

One ASGI middleware around the whole app, outside even Starlette's ServerErrorMiddleware
(install_security_headers), so JSON, problem+json, 304s, HEAD, CORS preflights, streamed
exports, errors raised in middleware and unhandled 500s all carry them.

JSON and every other non-HTML answer: `Content-Security-Policy: default-src 'none';
frame-ancestors 'none'` (a body opened in a browser runs nothing and is framed nowhere).
The HTML pages (api/pages.py: the front page, Swagger UI at /docs, GraphiQL at /graphql)
get a policy made from the page as rendered: the scripts and stylesheets it loads, by
exact URL for another host's, 'self' for this server's (all of them today: the pages
load only files this package ships), and inline scripts and styles by SHA-256 hash
(none today), nothing broader; plus what the page's code does once running (fetch from
this origin, images and fonts from `data:` URLs, styles a library adds as it runs). The page is rendered here by the same
function the route uses, never taken from the answer going out, so whatever gets into
an answer is not allowed by it; tests/test_security_headers.py checks the served pages
against their policy.

The API is public and read by browsers on other origins (CORS): its answers are
`Cross-Origin-Resource-Policy: cross-origin`; the HTML pages are `same-origin`, and open
no window relations (`Cross-Origin-Opener-Policy: same-origin`).
`Strict-Transport-Security` goes only on answers to requests that came over HTTPS (the
scheme uvicorn takes from a trusted proxy's X-Forwarded-Proto): over plain HTTP it means
nothing, and `includeSubDomains`/`preload` are for the owner of the domain to decide.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

from fastapi import FastAPI
from secure import (
    ContentSecurityPolicy,
    CrossOriginOpenerPolicy,
    CrossOriginResourcePolicy,
    ReferrerPolicy,
    Secure,
    StrictTransportSecurity,
    XContentTypeOptions,
    XFrameOptions,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NONE, SELF = "'none'", "'self'"
API_CSP = ContentSecurityPolicy().default_src(NONE).frame_ancestors(NONE)

HeaderList = list[tuple[bytes, bytes]]


def _raw(secure: Secure) -> HeaderList:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in secure.headers.items()]


def _common(csp: ContentSecurityPolicy, corp: CrossOriginResourcePolicy) -> Secure:
    return Secure(csp=csp, corp=corp, coop=CrossOriginOpenerPolicy().same_origin(),
                  referrer=ReferrerPolicy().no_referrer(), xcto=XContentTypeOptions().nosniff(),
                  xfo=XFrameOptions().deny())


def source_hash(text: str) -> str:
    """A CSP hash source for an inline script or style (its text as the page has it)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


class PageParts(HTMLParser):
    """What an HTML page loads: inline scripts and styles, script, stylesheet and icon URLs."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=False)  # inline text hashed as written, as browsers do
        self.inline_scripts: list[str] = []
        self.inline_styles: list[str] = []
        self.script_urls: list[str] = []
        self.style_urls: list[str] = []
        self.icon_urls: list[str] = []
        self._inside: str | None = None
        self._text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.script_urls.append(attributes["src"])
        elif tag in ("script", "style"):
            self._inside, self._text = tag, []
        elif tag == "link":
            rel = (attributes.get("rel") or "").lower().split()
            if "stylesheet" in rel:
                self.style_urls.append(attributes["href"])
            elif "icon" in rel:
                self.icon_urls.append(attributes["href"])

    def handle_data(self, data: str) -> None:
        if self._inside:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._inside:
            (self.inline_scripts if tag == "script" else self.inline_styles).append("".join(self._text))
            self._inside = None


@dataclass(frozen=True)
class PageNeeds:
    """What a page's code needs once it runs, beyond what its HTML names."""

    fonts: tuple[str, ...] = ()
    # A library that adds <style> elements as it runs (styled-components, say) cannot
    # be allowed by hash: its page gets 'unsafe-inline' for styles (never for scripts).
    inline_styles_at_run_time: bool = False


# An HTML page: how it is rendered for a root path, and what it needs once running.
Page = tuple[Callable[[str], str], PageNeeds]


def url_source(url: str) -> str:
    """A CSP source for a URL a page loads: the exact file of an absolute URL (a query
    cannot be part of a source, and a comma in one would split the policy in two);
    'self' for a URL on this server."""
    parts = urlsplit(url)
    if not parts.scheme:
        return SELF
    if parts.scheme == "data":
        return "data:"
    return f"{parts.scheme}://{parts.netloc}{quote(parts.path, safe='/@:+~!$&()*=')}"


def _sources(*sources: str) -> list[str]:
    """Each source once, in order; 'none' for no source at all."""
    return list(dict.fromkeys(sources)) or [NONE]


def page_csp(html: str, needs: PageNeeds = PageNeeds()) -> ContentSecurityPolicy:
    """The strict policy of one rendered page (see the module's docstring)."""
    parts = PageParts(html)
    styles = ["'unsafe-inline'"] if needs.inline_styles_at_run_time else map(source_hash, parts.inline_styles)
    csp = (ContentSecurityPolicy().default_src(NONE)
           .script_src(*_sources(*map(url_source, parts.script_urls), *map(source_hash, parts.inline_scripts)))
           .style_src(*_sources(*map(url_source, parts.style_urls), *styles))
           .img_src(*_sources(SELF, "data:", *map(url_source, parts.icon_urls)))
           .connect_src(SELF)
           .base_uri(NONE).form_action(NONE).frame_ancestors(NONE))
    if needs.fonts:
        csp = csp.font_src(*needs.fonts)
    return csp


class SecurityHeadersMiddleware:
    """Adds the headers at the start of every HTTP answer, replacing any of the same name."""

    def __init__(self, app: ASGIApp, pages: dict[str, Page],
                 hsts_max_age: int = 0):
        self.app = app
        self._pages = pages
        self._api_headers = _raw(_common(API_CSP, CrossOriginResourcePolicy().cross_origin()))
        self._page_headers: dict[tuple[str, str], HeaderList] = {}  # by (root path, path)
        self._hsts = _raw(Secure(hsts=StrictTransportSecurity().max_age(hsts_max_age))) if hsts_max_age else []
        self._names = {name for name, _ in [*self._api_headers, *self._hsts]}

    def page_headers(self, root_path: str, path: str) -> HeaderList:
        """The headers of an HTML page (its policy made once per root path)."""
        key = (root_path, path)
        if key not in self._page_headers:
            render, needs = self._pages[path]
            self._page_headers[key] = _raw(_common(page_csp(render(root_path), needs),
                                                   CrossOriginResourcePolicy().same_origin()))
        return self._page_headers[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "").rstrip("/")
        path = scope["path"].removeprefix(root_path)  # (servers differ on whether the path holds it)
        page = path in self._pages
        secure_transport = scope.get("scheme") == "https"

        def is_page(start: Message, headers: HeaderList) -> bool:
            """An HTML page, or a 304 revalidating one: its headers replace those the
            browser stored with the page, so it must carry the page's policy too."""
            if start["status"] == 304:
                return any(name == b"accept" and b"text/html" in value for name, value in scope["headers"])
            return any(name.lower() == b"content-type" and value.startswith(b"text/html") for name, value in headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(name, value) for name, value in message.get("headers", [])
                           if name.lower() not in self._names]
                if page and is_page(message, headers):
                    headers += self.page_headers(root_path, path)
                else:
                    headers += self._api_headers
                if secure_transport:
                    headers += self._hsts
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security_headers(app: FastAPI, *, pages: dict[str, Page], hsts_max_age: int) -> None:
    """Wrap the app's whole middleware stack (Starlette puts its ServerErrorMiddleware,
    which answers unhandled errors with a 500, outside every added middleware); `pages`:
    the HTML pages by path."""
    build_stack = app.build_middleware_stack

    def build_with_security_headers() -> ASGIApp:
        return SecurityHeadersMiddleware(build_stack(), pages, hsts_max_age)

    app.build_middleware_stack = build_with_security_headers
