"""`opsconsole serve`: the console in a browser, through textual-serve, with the safety it lacks.

textual-serve starts one console process per WebSocket and has no authentication and no Origin
check, so any page a user visits could open `ws://localhost:PORT/ws` and type into a console. Here:

- a random token is made at start and printed in the URL; the page (`/?token=…`) and the WebSocket
  (`/ws/<token>[/<name>]`: the page's script appends `?width=…` to the URL, so the token lives in the
  path) answer 403 without it; downloads (`/download/<key>`) need the cookie the page sets;
- no log line carries the token or a download key (the access log shows `<token>`, `<key>`);
- a WebSocket upgrade whose `Origin` is not one of this server's URLs is refused (403): the
  `--public-url` alone when given (a reverse proxy), else the bound address, and on loopback
  `127.0.0.1`, `localhost` and `[::1]` alike; the page's WebSocket URL is built on the same origin;
- each browser states a name before its console starts (a form on the page; required with
  `--allow-changes`, optional read-only): it becomes the console's user, so the audit log records
  `user` (the stated name @ this machine), `via: "serve"` and the browser's address as `remote`;
- every console it starts is read-only unless `--allow-changes`;
- saving from a served console's log viewer is a download to the browser (Textual's deliver_text
  through textual-serve's download manager): nothing is written on this machine;
- the page loads nothing from outside: the template's Google Fonts link is replaced by the fonts
  textual-serve bundles;
- the terminal has the keyboard focus once the page has loaded: keys work without a click first.
"""

from __future__ import annotations

import asyncio
import atexit
import hmac
import html
import ipaddress
import logging
import re
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from opsconsole.errors import UsageError

log = logging.getLogger("opsconsole.serve")

FONT_FACE = """<style>
      @font-face {
        font-family: "Roboto Mono";
        src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype");
        font-style: normal;
      }
      @font-face {
        font-family: "Roboto Mono";
        src: url("{{ config.static.url }}fonts/RobotoMono-Italic-VariableFont_wght.ttf") format("truetype");
        font-style: italic;
      }
    </style>"""


# textual-serve's page leaves the keyboard focus on the body: keys reach the console only after a
# click. This focuses the terminal's input (xterm's helper textarea, made by textual.js's onload) once
# the page has loaded, and again when the console is connected (its first focus event then reaches the
# app), unless the person has put the focus somewhere else meanwhile.
FOCUS_TERMINAL = """<script>
      (function () {
        function focusTerminal() {
          const input = document.querySelector("#terminal .xterm-helper-textarea");
          const active = document.activeElement;
          if (input && (!active || active === document.body || active === input)) {
            input.blur();
            input.focus({ preventScroll: true });
          }
          return input !== null;
        }
        window.addEventListener("load", function () {
          setTimeout(function () {
            focusTerminal();
            const watch = new MutationObserver(function () {
              if (document.body.classList.contains("-loaded")) {
                watch.disconnect();
                focusTerminal();
              }
            });
            watch.observe(document.body, { attributes: true, attributeFilter: ["class"] });
          }, 0);
        });
      })();
    </script>
  </body>"""


def local_template(folder: Path) -> Path:
    """textual-serve's page with its one outside request (Google Fonts) replaced by bundled fonts, and
    the keyboard focus on the terminal as soon as it has loaded (FOCUS_TERMINAL)."""
    import textual_serve

    source = Path(textual_serve.__file__).parent / "templates" / "app_index.html"
    text = source.read_text()
    start = text.find('<link\n      rel="stylesheet"\n      href="https://fonts.googleapis.com')
    if start < 0:
        start = text.find("https://fonts.googleapis.com")
        start = text.rfind("<link", 0, start)
    end = text.find("/>", start) + 2
    if start < 0 or end < 2:
        raise RuntimeError(f"unexpected textual-serve template {source}: no Google Fonts link found")
    text = text[:start] + FONT_FACE + text[end:]
    if text.count("</body>") != 1:
        raise RuntimeError(f"unexpected textual-serve template {source}: no single </body>")
    (folder / "app_index.html").write_text(text.replace("</body>", FOCUS_TERMINAL))
    return folder


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return host == ""


def make_origin(scheme: str, host: str, port: int | None) -> str:
    """`scheme://host[:port]` as browsers send it in `Origin` (lower case, no default port)."""
    host = host.lower().strip("[]")
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def normalise_origin(value: str) -> str | None:
    """An `Origin` header (or URL) in the form `make_origin` gives, or None when it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return make_origin(parts.scheme.lower(), parts.hostname, port)


def parse_public_url(url: str) -> str:
    """`--public-url`: the origin browsers use (a reverse proxy's). Raises UsageError."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UsageError(f"--public-url {url!r} is not a URL ({exc})", "Usage") from None
    origin = normalise_origin(url)
    if origin is None:
        raise UsageError(
            f"--public-url {url!r}: give the URL browsers open, as http(s)://HOST[:PORT]", "Usage"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError(
            f"--public-url {url!r}: give only scheme, host and port (the page loads /static, /ws and "
            "/download from the root, so the proxy must serve this console at the root of its host)",
            "Usage",
        )
    return origin


def allowed_origins(bind: str, port: int, public_url: str | None) -> list[str]:
    """The origins whose pages may open a console; the first is the one printed."""
    if public_url:
        return [parse_public_url(public_url)]
    if is_unspecified(bind):
        raise UsageError(
            f"--bind {bind or '(empty)'} listens on every address, so the URL browsers use is not "
            "known: pass --public-url http(s)://HOST[:PORT] (the name browsers open, e.g. a reverse "
            "proxy's), or bind one address",
            "Usage",
        )
    origins = [make_origin("http", bind, port)]
    if is_loopback(bind):
        origins += [make_origin("http", h, port) for h in ("127.0.0.1", "localhost", "::1")]
    return list(dict.fromkeys(origins))


# A name a browser states: letters, digits and a few joiners, at most 64; no control characters.
NAME_PATTERN = re.compile(r"\w[\w .@'-]{0,63}")


def check_name(name: str) -> str | None:
    """The stated name, trimmed, or None when it is not an acceptable name."""
    name = " ".join(name.split())
    return name if NAME_PATTERN.fullmatch(name) else None


def console_command(profile: str | None, allow_changes: bool, remote: str, name: str | None = None) -> str:
    """The shell command one browser's console runs (textual-serve starts it through a shell)."""
    parts = [sys.executable, "-m", "opsconsole"]
    if profile:
        parts += ["--profile", profile]
    if not allow_changes:
        parts.append("--read-only")
    parts.append("console")
    env = f"OPSCONSOLE_VIA=serve OPSCONSOLE_REMOTE={shlex.quote(remote)} "
    if name:  # the audit log's `user` (whoami reads it): the name this browser stated
        env += f"OPSCONSOLE_USER={shlex.quote(name)} "
    return env + " ".join(shlex.quote(p) for p in parts)


NAME_FORM = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>opsconsole</title>
<style>
body {{ background: #0c181f; color: #eee; font-family: menlo, monospace; display: flex;
  height: 100vh; margin: 0; align-items: center; justify-content: center; }}
form {{ background: #12232d; padding: 32px; max-width: 560px; }}
input, button {{ font: inherit; padding: 8px; margin-top: 12px; }} .error {{ color: #f77; }}
</style></head>
<body><form method="get" action="/">
<p>Who are you? Every action this console runs is recorded in the audit log under this name.</p>
<p class="error">{error}</p>
<input type="hidden" name="token" value="{token}">
<label>Your name <input name="name" id="name" value="{name}" maxlength="64" required autofocus></label>
<button type="submit" id="start-console">Open the console</button>
</form></body></html>
"""


def make_server(
    profile: str | None,
    host: str,
    port: int,
    allow_changes: bool,
    token: str | None = None,
    public_url: str | None = None,
) -> Any:
    """A textual-serve Server with the token, the Origin check, stated names and local fonts."""
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from aiohttp.abc import AbstractAccessLogger
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, to_int

    origins = allowed_origins(host, port, public_url)  # UsageError before anything is made
    folder = Path(tempfile.mkdtemp(prefix="opsconsole-serve-"))
    atexit.register(shutil.rmtree, folder, True)  # the page template copy goes with the server
    templates = local_template(folder)
    the_token = token or secrets.token_urlsafe(24)

    class AccessLog(AbstractAccessLogger):
        """One line a request, without the token, the query (token, name) or a download's key."""

        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            path = re.sub(r"^/download/[^/]+", "/download/<key>", request.path.replace(the_token, "<token>"))
            self.logger.info(
                '%s "%s %s" %s %.3fs', request.remote, request.method, path, response.status, time
            )

    class ConsoleServer(Server):
        def __init__(self) -> None:
            super().__init__(
                "opsconsole",
                host=host,
                port=port,
                title="opsconsole",
                public_url=origins[0],
                templates_path=templates,
            )
            self.token = the_token
            self.origins = origins
            self.profile = profile
            self.allow_changes = allow_changes
            self.cookie = f"opsconsole-{port}"  # cookies ignore ports: one name a server

        @property
        def url(self) -> str:
            return f"{self.public_url}/?token={self.token}"

        def _token_ok(self, given: str) -> bool:
            return hmac.compare_digest(given.encode(), self.token.encode())

        async def _make_app(self) -> web.Application:
            app = web.Application()
            aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
            app.add_routes(
                [
                    web.get("/", self.guarded_index, name="index"),
                    web.get("/ws/{token}", self.guarded_websocket, name="websocket"),
                    web.get("/ws/{token}/{name}", self.guarded_websocket, name="websocket-named"),
                    web.get("/download/{key}", self.guarded_download, name="download"),
                    web.static("/static", self.statics_path, show_index=False, name="static"),
                ]
            )
            app.on_startup.append(self.on_startup)
            return app

        async def on_startup(self, app: web.Application) -> None:
            pass  # `opsconsole serve` prints its own banner

        def serve(self, debug: bool = False) -> None:
            """textual-serve's serve, with an access log that carries no token."""
            self.debug = debug
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            try:
                loop.add_signal_handler(signal.SIGINT, self.request_exit)
                loop.add_signal_handler(signal.SIGTERM, self.request_exit)
            except NotImplementedError:
                pass
            web.run_app(
                self._make_app(),
                host=self.host,
                port=self.port,
                handle_signals=False,
                loop=loop,
                print=lambda *args: None,
                access_log_class=AccessLog,
            )

        def _page_origin(self, request: web.Request) -> str:
            """The origin the browser is on, when it is one of ours (localhost or 127.0.0.1...)."""
            scheme = "https" if self.public_url.startswith("https") else "http"
            seen = normalise_origin(f"{scheme}://{request.host}")
            return seen if seen in self.origins else self.public_url

        async def guarded_index(self, request: web.Request) -> web.StreamResponse:
            if not self._token_ok(request.query.get("token", "")):
                raise web.HTTPForbidden(
                    text="403: open the URL with the token that `opsconsole serve` printed (…/?token=…)\n"
                )
            given = request.query.get("name")
            name = check_name(given) if given is not None else None
            if (given is not None and name is None) or (name is None and self.allow_changes):
                error = "A name is letters, digits, spaces and . _ @ ' - (at most 64)." if given else ""
                page = NAME_FORM.format(
                    error=html.escape(error), token=html.escape(self.token), name=html.escape(given or "")
                )
                response: web.StreamResponse = web.Response(
                    text=page, content_type="text/html", status=400 if given else 200
                )
            else:
                response = self._console_page(request, name)
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"  # the token stays out of Referer
            return response

        def _console_page(self, request: web.Request, name: str | None) -> web.StreamResponse:
            origin = self._page_origin(request)
            router = request.app.router
            static = f"{origin}{router['static'].url_for(filename='/')}".rstrip("/") + "/"
            socket = (
                f"{'wss' if origin.startswith('https') else 'ws'}:{origin.split(':', 1)[1]}/ws/{self.token}"
            )
            if name:
                socket += "/" + quote(name, safe="")
            context = {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": socket,
                "config": {"static": {"url": static}},
                "application": {"name": self.title},
            }
            response = aiohttp_jinja2.render_template("app_index.html", request, context)
            response.set_cookie(  # downloads open in a new tab, without the token in their URL
                self.cookie,
                self.token,
                path="/download",
                httponly=True,
                samesite="Strict",
                secure=origin.startswith("https"),
            )
            return response

        async def guarded_download(self, request: web.Request) -> web.StreamResponse:
            if not self._token_ok(request.cookies.get(self.cookie, "")):
                raise web.HTTPForbidden(text="403: downloads open from the console's page\n")
            key = request.match_info["key"]
            try:
                meta = await self.download_manager.get_download_metadata(key)
            except KeyError:
                raise web.HTTPNotFound(text="404: no such download (each is fetched once)\n") from None
            response = web.StreamResponse()
            response.headers["Content-Type"] = meta.mime_type + (
                f"; charset={meta.encoding}" if meta.encoding else ""
            )
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", meta.file_name)[:120] or "opsconsole.txt"
            how = "inline" if meta.open_method == "browser" else "attachment"
            response.headers["Content-Disposition"] = f'{how}; filename="{safe}"'
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Content-Type-Options"] = "nosniff"
            await response.prepare(request)
            async for chunk in self.download_manager.download(key):
                await response.write(chunk)
            await response.write_eof()
            return response

        async def guarded_websocket(self, request: web.Request) -> web.StreamResponse:
            if not self._token_ok(request.match_info.get("token", "")):
                raise web.HTTPForbidden(text="403: wrong or missing token\n")
            origin = request.headers.get("Origin", "")
            if normalise_origin(origin) not in self.origins:
                log.warning(
                    "refused a WebSocket from Origin %r (expected %s)", origin, " or ".join(self.origins)
                )
                raise web.HTTPForbidden(text=f"403: WebSocket from another origin ({origin or 'none'})\n")
            given = request.match_info.get("name")
            name = check_name(given) if given is not None else None
            if (given is not None and name is None) or (name is None and self.allow_changes):
                raise web.HTTPForbidden(
                    text="403: state your name first: open the page URL and fill in the form\n"
                )
            remote = request.remote or "unknown"
            websocket = web.WebSocketResponse(heartbeat=15)
            width = to_int(request.query.get("width", "80"), 80)
            height = to_int(request.query.get("height", "24"), 24)
            service: AppService | None = None
            try:
                await websocket.prepare(request)
                log.info("console for %s at %s", name or "(no name stated)", remote)
                service = AppService(
                    console_command(self.profile, self.allow_changes, remote, name),
                    write_bytes=websocket.send_bytes,
                    write_str=websocket.send_str,
                    close=websocket.close,  # type: ignore[arg-type]  # as textual-serve itself passes it
                    download_manager=self.download_manager,
                    debug=self.debug,
                )
                await service.start(width, height)
                try:
                    await self._process_messages(websocket, service)
                finally:
                    await service.stop()
            except asyncio.CancelledError:
                await websocket.close()
            except Exception as error:  # noqa: BLE001 - one browser's failure never stops the server
                log.exception(error)
            finally:
                if service is not None:
                    await service.stop()
            return websocket

    return ConsoleServer()
