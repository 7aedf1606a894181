"""`opsconsole serve`: the console in a browser, through textual-serve, with the safety it lacks.

textual-serve starts one console process per WebSocket and has no authentication and no Origin
check, so any page a user visits could open `ws://localhost:PORT/ws` and type into a console. Here:

- a random token is made at start and printed in the URL; the page (`/?token=…`) and the WebSocket
  (`/ws/<token>`: the page's script appends `?width=…` to the URL, so the token lives in the path)
  answer 403 without it;
- a WebSocket upgrade whose `Origin` is not this server's own URL is refused (403);
- every console it starts is read-only unless `--allow-changes`, and carries `OPSCONSOLE_VIA=serve`
  and the browser's address, which the audit log records with every action;
- the page loads nothing from outside: the template's Google Fonts link is replaced by the fonts
  textual-serve bundles.
"""

from __future__ import annotations

import asyncio
import atexit
import hmac
import logging
import secrets
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

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


def local_template(folder: Path) -> Path:
    """textual-serve's page with its one outside request (Google Fonts) replaced by bundled fonts."""
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
    (folder / "app_index.html").write_text(text[:start] + FONT_FACE + text[end:])
    return folder


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def console_command(profile: str | None, allow_changes: bool, remote: str) -> str:
    """The shell command one browser's console runs (textual-serve starts it through a shell)."""
    parts = [sys.executable, "-m", "opsconsole"]
    if profile:
        parts += ["--profile", profile]
    if not allow_changes:
        parts.append("--read-only")
    parts.append("console")
    env = f"OPSCONSOLE_VIA=serve OPSCONSOLE_REMOTE={shlex.quote(remote)} "
    return env + " ".join(shlex.quote(p) for p in parts)


def make_server(
    profile: str | None, host: str, port: int, allow_changes: bool, token: str | None = None
) -> Any:
    """A textual-serve Server with the token, the Origin check and local fonts."""
    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, to_int

    folder = Path(tempfile.mkdtemp(prefix="opsconsole-serve-"))
    atexit.register(shutil.rmtree, folder, True)  # the page template copy goes with the server
    templates = local_template(folder)

    class ConsoleServer(Server):
        def __init__(self) -> None:
            super().__init__("opsconsole", host=host, port=port, title="opsconsole", templates_path=templates)
            self.token = token or secrets.token_urlsafe(24)
            self.profile = profile
            self.allow_changes = allow_changes

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
                    web.static("/static", self.statics_path, show_index=False, name="static"),
                ]
            )
            app.on_startup.append(self.on_startup)
            return app

        async def on_startup(self, app: web.Application) -> None:
            pass  # `opsconsole serve` prints its own banner

        async def guarded_index(self, request: web.Request) -> web.StreamResponse:
            if not self._token_ok(request.query.get("token", "")):
                raise web.HTTPForbidden(
                    text="403: open the URL with the token that `opsconsole serve` printed (…/?token=…)\n"
                )
            router = request.app.router
            static = f"{self.public_url}{router['static'].url_for(filename='/')}".rstrip("/") + "/"
            scheme = "wss" if self.public_url.startswith("https") else "ws"
            context = {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": f"{scheme}:{self.public_url.split(':', 1)[1]}/ws/{self.token}",
                "config": {"static": {"url": static}},
                "application": {"name": self.title},
            }
            response = aiohttp_jinja2.render_template("app_index.html", request, context)
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"  # the token stays out of Referer
            return response

        async def guarded_websocket(self, request: web.Request) -> web.StreamResponse:
            if not self._token_ok(request.match_info.get("token", "")):
                raise web.HTTPForbidden(text="403: wrong or missing token\n")
            origin = request.headers.get("Origin", "")
            if origin.rstrip("/") != self.public_url.rstrip("/"):
                log.warning("refused a WebSocket from Origin %r (expected %s)", origin, self.public_url)
                raise web.HTTPForbidden(text=f"403: WebSocket from another origin ({origin or 'none'})\n")
            remote = request.remote or "unknown"
            websocket = web.WebSocketResponse(heartbeat=15)
            width = to_int(request.query.get("width", "80"), 80)
            height = to_int(request.query.get("height", "24"), 24)
            service: AppService | None = None
            try:
                await websocket.prepare(request)
                service = AppService(
                    console_command(self.profile, self.allow_changes, remote),
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
