"""`bpo annotate RUN_DIR`: the labelling page and its JSON API, on Starlette, served by uvicorn.

    GET  /            the page (a rater's link is /?token=T: the token goes into a cookie, then /)
    GET  /app.js      the page's script; /app.css its style
    GET  /api/state   the rater's next pair (prompt, left, right), progress, the label undo would take back
    POST /api/label   {"pair_id", "choice": left|right|tie|both_bad, "nonce"} -> committed, then the next state
    POST /api/undo    {"nonce"} -> that label taken back (kept in the store's history), then the state

Safe by default: it listens on 127.0.0.1 unless --host is given; every request must carry a rater's
token (Authorization: Bearer, the cookie set from the rater's link, or ?token=): none is 401, an
unknown one 403; a Host header other than this server's names, or an Origin other than its own, is
403 (DNS rebinding, cross-site requests); the page's script puts model text in with textContent only,
and a Content-Security-Policy allows no inline script, so a response holding <script> shows as text.
A label is committed (synchronous=FULL) before its answer is sent; the page retries until it gets one.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bpo.annotate.store import LabelConflict, LabelStore, StoreError, UnknownPair, shows_first_on_left
from bpo.data.chat import prompt_text

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the rater's link holds the token
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
BUTTONS = ("left", "right", "tie", "both_bad")


def allowed_hosts(host: str, port: int, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """Host header values this server answers to: the loopback names, the --host it listens on (unless a
    wildcard), and names given with --allow-host; each with the port."""
    names = {"127.0.0.1", "localhost", "[::1]", *extra}
    if host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    return frozenset(f"{n.lower()}:{port}" for n in names)


def cookie_name(port: int) -> str:
    return f"bpo_rater_{port}"  # cookies ignore ports: two servers on one machine keep theirs apart


class Guard:
    """ASGI middleware in front of every route: Host and Origin first, then the rater's token."""

    def __init__(self, app: ASGIApp, store: LabelStore, hosts: frozenset[str], port: int):
        self.app, self.store, self.hosts, self.cookie = app, store, hosts, cookie_name(port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        host = request.headers.get("host", "").lower()
        origin = request.headers.get("origin")
        if host not in self.hosts:
            return await _refuse(403, "foreign Host header", scope, receive, send)
        if origin is not None and origin.lower() != f"http://{host}":
            return await _refuse(403, "foreign Origin", scope, receive, send)
        token = _token(request, self.cookie)
        if not token:
            return await _refuse(401, "a rater token is required (open your rater link)", scope, receive, send)
        rater = await run_in_threadpool(self.store.rater_for, token)
        if rater is None:
            return await _refuse(403, "unknown rater token", scope, receive, send)
        scope.setdefault("state", {})["rater"] = rater
        scope["state"]["token"] = token
        await self.app(scope, receive, send)


def _token(request: Request, cookie: str) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(cookie) or request.query_params.get("token")


async def _refuse(status: int, why: str, scope: Scope, receive: Receive, send: Send) -> None:
    headers = {**SECURITY_HEADERS, **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    await JSONResponse({"error": why}, status_code=status, headers=headers)(scope, receive, send)


def create_app(
    store: LabelStore, host: str = "127.0.0.1", port: int = 8765, extra_hosts: tuple[str, ...] = ()
) -> ASGIApp:
    cookie = cookie_name(port)

    def state(rater: str) -> dict:
        """The rater's next pair, shown in the rater's own random order, with progress and what undo takes back."""
        pair = store.next_for(rater)
        shown = None
        if pair is not None:
            first_left = shows_first_on_left(rater, pair.id)
            left, right = (pair.first, pair.second) if first_left else (pair.second, pair.first)
            shown = {
                "id": pair.id,
                "phase": pair.phase,
                "prompt": prompt_text(pair.prompt),
                "left": left.text,
                "right": right.text,
            }
        last = store.last_label(rater)
        return {"rater": rater, "pair": shown, "progress": store.progress(rater), "undo": last[0] if last else None}

    async def page(request: Request) -> Response:
        if "token" in request.query_params:  # a rater's link: keep the token in a cookie, out of the address bar
            response = RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)
            response.set_cookie(cookie, request.state.token, httponly=True, samesite="strict", path="/")
            return response
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def get_state(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(state, request.state.rater), headers=SECURITY_HEADERS)

    async def post_label(request: Request) -> Response:
        body = await _json(request, ("pair_id", "choice", "nonce"))
        if isinstance(body, Response):
            return body
        rater = request.state.rater
        if body["choice"] not in BUTTONS:
            return _error(400, f"choice: {body['choice']!r} is not one of {', '.join(BUTTONS)}")
        first_left = shows_first_on_left(rater, body["pair_id"])
        choice = {"left": "first" if first_left else "second", "right": "second" if first_left else "first"}.get(
            body["choice"], body["choice"]
        )

        def commit() -> dict:
            applied = store.add_label(
                body["pair_id"], rater, choice, body["nonce"], "web", "first" if first_left else "second"
            )
            return {"applied": applied, **state(rater)}

        return await _answer(commit)

    async def post_undo(request: Request) -> Response:
        body = await _json(request, ("nonce",))
        if isinstance(body, Response):
            return body
        rater = request.state.rater

        def undo() -> dict:
            return {"applied": store.undo(rater, body["nonce"]), **state(rater)}

        return await _answer(undo)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/app.js", _static("app.js"), methods=["GET"]),
        Route("/app.css", _static("app.css"), methods=["GET"]),
        Route("/api/state", get_state, methods=["GET"]),
        Route("/api/label", post_label, methods=["POST"]),
        Route("/api/undo", post_undo, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    return Guard(app, store, allowed_hosts(host, port, extra_hosts), port)


def _static(name: str):
    async def asset(request: Request) -> Response:
        return FileResponse(STATIC / name, headers=SECURITY_HEADERS)

    return asset


async def _json(request: Request, keys: tuple[str, ...]) -> dict | Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "expected a JSON object")
    if not isinstance(body, dict):
        return _error(400, "expected a JSON object")
    for key in keys:
        if not isinstance(body.get(key), str) or not body[key] or len(body[key]) > 200:
            return _error(400, f"{key}: expected a non-empty string")
    return body


async def _answer(work) -> Response:
    try:
        return JSONResponse(await run_in_threadpool(work), headers=SECURITY_HEADERS)
    except LabelConflict as err:
        return _error(409, str(err))
    except UnknownPair as err:
        return _error(404, str(err))
    except StoreError as err:
        return _error(400, str(err))


def _error(status: int, why: str) -> Response:
    return JSONResponse({"error": why}, status_code=status, headers=SECURITY_HEADERS)


def serve(store: LabelStore, host: str, port: int, extra_hosts: tuple[str, ...] = ()) -> None:
    """Run the server until interrupted (uvicorn handles SIGINT/SIGTERM)."""
    import uvicorn

    uvicorn.run(create_app(store, host, port, extra_hosts), host=host, port=port, log_level="warning", access_log=False)
