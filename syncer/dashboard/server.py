"""`syncer run --ui`: the dashboard's routes, on the daemon's own HTTP machinery
(`syncer.daemon.http.LimitedHTTPServer`: the same connection cap, header and body deadlines
and reaper as /healthz and /webhook).

    GET  /                           the Apps the user may see
    GET  /apps/NS/NAME               one App (404 when the user may not see it)
    GET  /apps/NS/NAME/compare?from=ENTRY&to=ENTRY   two history entries' renders compared
    GET  /stream, /stream/apps/NS/NAME   the same `<main>`, as server-sent events
    POST /apps/NS/NAME/reconcile|suspend|resume   with --ui-actions, and `patch` on the App
    POST /apps/NS/NAME/rollback (revision=SHA)|release
    GET|POST /login, POST /logout    --ui-auth kubernetes: the token cookie
    GET  /static/dashboard.css|js

Event streams are long requests: each holds a connection that the reaper leaves alone while
it is answered, so they have their own cap (a quarter of the server's connections by
default: probes and pages always find room) and end after `stream_idle` seconds without an
update (the browser reconnects, which checks the user's token and rights again).

The compare page has no stream: the renders of two commits do not change, and a Secret's
field is named there at most, in the page only.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Literal
from urllib.parse import parse_qs, unquote

from syncer.dashboard import assets, comparepage, views
from syncer.dashboard.auth import (
    ANONYMOUS,
    Authorizer,
    User,
    bearer_token,
    csrf_ok,
    csrf_token,
    new_secret,
    same_origin,
)
from syncer.dashboard.compare import Renders, compare_entries, find_entry, history_of
from syncer.dashboard.reader import AppsReader
from syncer.daemon.appclient import patch_app, read_app, request_reconcile
from syncer.daemon.rollback import rollback_hold
from syncer.daemon.http import HTTPLimits, LimitedHandler, LimitedHTTPServer
from syncer.errors import ClusterError, ConfigError, Forbidden, NotFound
from syncer.kube import ClientOptions, Kube

log = logging.getLogger(__name__)

TOKEN_COOKIE = "syncer-token"
SESSION_COOKIE = "syncer-session"
MAX_FORM = 16 * 1024
"""A login token or an action's form; anything bigger is refused."""
KEEPALIVE_SECONDS = 15.0
Action = Literal["reconcile", "suspend", "resume", "rollback", "release"]
ACTIONS: tuple[Action, ...] = ("reconcile", "suspend", "resume", "rollback", "release")
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),  # no-referrer would make browsers send `Origin: null`
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True)
class DashboardOptions:
    listen: tuple[str, int] = ("127.0.0.1", 8081)
    auth: Literal["none", "kubernetes"] = "none"
    actions: bool = False
    """`--ui-actions`: reconcile, suspend and resume buttons."""
    max_streams: int = 16
    stream_idle: float = 300.0
    """Seconds an event stream stays open without sending an update."""
    limits: HTTPLimits = HTTPLimits()


@dataclass(frozen=True)
class Session:
    """Who sent a request, and the CSRF token of their session."""

    user: User
    csrf: str
    new_cookie: str | None = None
    """A Set-Cookie value to send (the anonymous session's first visit)."""


class Dashboard:
    """The routes' state: the reader, the authorizer, the CSRF secret, the stream slots."""

    def __init__(self, *, reader: AppsReader, renders: Renders, authorizer: Authorizer, options: DashboardOptions,
                 act_as: Callable[[User], Kube]) -> None:
        self.reader = reader
        self.renders = renders
        self.authorizer = authorizer
        self.options = options
        self.secret = new_secret()
        self.streams = threading.BoundedSemaphore(max(1, options.max_streams))
        self._act_as = act_as
        self.server = LimitedHTTPServer(options.listen, _DashboardHandler, limits=options.limits)
        self.server.dashboard = self  # type: ignore[attr-defined]

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def start(self) -> None:
        self.server.start()
        log.info("dashboard on http://%s:%d (auth %s, actions %s)", *self.address, self.options.auth,
                 "on" if self.options.actions else "off")

    def stop(self) -> None:
        self.server.stop()

    # -- what a user sees -----------------------------------------------------------------

    def visible(self, user: User, namespace: str, name: str) -> bool:
        """May `get` Apps in the namespace, or this one App (RBAC resourceNames)."""
        return (self.authorizer.may(user, verb="get", namespace=namespace)
                or self.authorizer.may(user, verb="get", namespace=namespace, name=name))

    def may_act(self, user: User, namespace: str, name: str) -> bool:
        return self.options.actions and self.authorizer.may(user, verb="patch", namespace=namespace, name=name)

    def apps_main(self, user: User) -> str:
        rows = [views.app_row(app) for app in self.reader.apps()]
        return views.apps_main([row for row in rows if self.visible(user, row.namespace, row.name)],
                               now=views.now_utc())

    def app_main(self, session: Session, namespace: str, name: str) -> str | None:
        """One App's `<main>`; None when it does not exist or the user may not see it."""
        app = self.reader.app(namespace, name)
        if app is None or not self.visible(session.user, namespace, name):
            return None
        actions = views.Actions(csrf=session.csrf, allowed=self.may_act(session.user, namespace, name))
        return views.app_main(app, objects=self.reader.objects(namespace, name),
                              events=views.event_rows(self.reader.events(app)), actions=actions, now=views.now_utc())

    def compare_main(self, session: Session, namespace: str, name: str, *, before: str,
                     after: str) -> tuple[int, str] | None:
        """Two history entries of an App compared: (status, `<main>`); None when the App does
        not exist or the user may not see it. An entry the history no longer holds is a 404
        that says so; a revision that cannot be rendered is a message on the page."""
        app = self.reader.app(namespace, name)
        if app is None or not self.visible(session.user, namespace, name):
            return None
        history = history_of(app)
        chosen = {key: find_entry(history, key) for key in (before, after)}
        missing = [key for key, entry in chosen.items() if entry is None]
        if missing:
            return HTTPStatus.NOT_FOUND, comparepage.no_entry_main(namespace, name, missing=missing)
        old, new = chosen[before], chosen[after]
        assert old is not None and new is not None
        comparison = compare_entries(self.renders, namespace=namespace, name=name, before=old, after=new)
        return HTTPStatus.OK, comparepage.compare_main(app, comparison, history=history, now=views.now_utc())

    # -- what a user does -----------------------------------------------------------------

    def act(self, user: User, *, namespace: str, name: str, action: Action, revision: str = "") -> str:
        """Patch the App as `syncer reconcile|suspend|resume|rollback` do, with the user's own
        token; returns what happened. ClusterError (the API server's refusal) and ConfigError
        (a suspended App asked to reconcile, a revision not in its history) propagate."""
        kube = self._act_as(user)
        try:
            live = read_app(kube, namespace=namespace, name=name)
            if action == "rollback":
                hold = rollback_hold(live, to=revision, steps=None, requested_by=user.name)
                patch_app(kube, live, {"spec": {"hold": hold.to_spec()}})
                return hold.describe()
            if action == "release":
                if not (live.get("spec") or {}).get("hold"):
                    raise ConfigError(f"App/{namespace}/{name}: not held; nothing to release")
                patch_app(kube, live, {"spec": {"hold": None}})
                return "hold released"
            if action == "reconcile":
                if (live.get("spec") or {}).get("suspend"):
                    raise ConfigError(f"App/{namespace}/{name}: suspended; resume it first")
                return f"sync requested ({request_reconcile(kube, live)})"
            patch_app(kube, live, {"spec": {"suspend": action == "suspend"}})
            return "suspended" if action == "suspend" else "resumed"
        finally:
            if kube is not None:
                kube.close()


def user_kube(client: ClientOptions) -> Callable[[User], Kube]:
    """Actions of a reviewed user: a client with their own token (same server and CA)."""
    def connect(user: User) -> Kube:
        return Kube.connect(replace(client, bearer_token=user.token, impersonate=None, max_retries=0))
    return connect


def daemon_kube(client: ClientOptions) -> Callable[[User], Kube]:
    """`--ui-auth none`: nobody to act as; the daemon's own client (loopback only)."""
    def connect(user: User) -> Kube:
        return Kube.connect(replace(client, max_retries=0))
    return connect


class _DashboardHandler(LimitedHandler):
    @property
    def dashboard(self) -> Dashboard:
        return self.server.dashboard  # type: ignore[attr-defined, no-any-return]

    # -- plumbing -------------------------------------------------------------------------

    def _cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie", ""))
        except CookieError:
            return {}
        return {key: morsel.value for key, morsel in jar.items()}

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _respond(self, status: int, body: str, *, content_type: str = "text/html; charset=utf-8",
                 cookies: tuple[str, ...] = (), location: str | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        if location is not None:
            self.send_header("Location", location)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _page(self, status: int, session: Session | None, *, title: str, main: str, stream: str | None = None,
              cookies: tuple[str, ...] = ()) -> None:
        signed_in = session is not None and session.user is not ANONYMOUS and self.dashboard.authorizer.required
        html = views.page(title=title, main=main, stream=stream, user=session.user.name if session else "",
                          csrf=session.csrf if session else "", signed_in=signed_in)
        extra = (session.new_cookie,) if session is not None and session.new_cookie else ()
        self._respond(status, html, cookies=(*extra, *cookies))

    def _error(self, status: int, message: str, session: Session | None = None) -> None:
        self._page(status, session, title=HTTPStatus(status).phrase,
                   main=f"<h1>{views.esc(HTTPStatus(status).phrase)}</h1><p>{views.esc(message)}</p>"
                        '<p><a href="/">Back to the Apps</a></p>')

    def _session(self) -> Session | None:
        """The request's session; None when it must sign in (the answer is then sent: a
        redirect to /login, or 401 to a bad Authorization header)."""
        dashboard = self.dashboard
        cookies = self._cookies()
        if not dashboard.authorizer.required:
            session_id = cookies.get(SESSION_COOKIE, "")
            new_cookie = None
            if len(session_id) < 32:
                session_id = secrets.token_urlsafe(32)
                new_cookie = f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict"
            return Session(user=ANONYMOUS, csrf=csrf_token(dashboard.secret, session_id), new_cookie=new_cookie)
        token = bearer_token(self._headers(), cookies, cookie=TOKEN_COOKIE)
        user = None
        if token:
            try:
                user = dashboard.authorizer.authenticate(token)
            except ClusterError as error:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"cannot review the token: {error}")
                return None
        if user is not None:
            return Session(user=user, csrf=csrf_token(dashboard.secret, user.token))
        if "authorization" in self._headers():
            self._respond(HTTPStatus.UNAUTHORIZED, "the bearer token is not valid\n",
                          content_type="text/plain; charset=utf-8")
        else:
            expired = (f"{TOKEN_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",) if token else ()
            self._respond(HTTPStatus.SEE_OTHER, "", cookies=expired, location="/login")
        return None

    def _checked_post(self) -> tuple[Session, dict[str, str]] | None:
        """The session and form of a POST whose Origin and CSRF token are the dashboard's;
        None when refused (the answer is sent)."""
        body = self.read_body(MAX_FORM)
        if body is None:
            return None
        if not same_origin(self.headers.get("Origin"), self.headers.get("Host")):
            self._error(HTTPStatus.FORBIDDEN, "refused: the request does not come from this dashboard's pages "
                                              "(its Origin header is missing or another site's)")
            return None
        form = {key: values[0] for key, values in parse_qs(body.decode(errors="replace")).items() if values}
        session = self._session()
        if session is None:
            return None
        session_id = session.user.token if self.dashboard.authorizer.required else self._cookies().get(SESSION_COOKIE, "")
        if session.new_cookie is not None or not csrf_ok(self.dashboard.secret, session_id, form.get("csrf", "")):
            self._error(HTTPStatus.FORBIDDEN, "refused: the form's CSRF token is missing or not this session's; "
                                              "reload the page and try again", session)
            return None
        return session, form

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.server.connections.answering(self.request)
        path = self.path.split("?", 1)[0]
        if path == "/static/dashboard.css":
            self._respond(HTTPStatus.OK, assets.CSS, content_type="text/css; charset=utf-8")
            return
        if path == "/static/dashboard.js":
            self._respond(HTTPStatus.OK, assets.JS, content_type="text/javascript; charset=utf-8")
            return
        if path == "/login":
            self._login_page()
            return
        session = self._session()
        if session is None:
            return
        if path == "/":
            self._page(HTTPStatus.OK, session, title="Apps", main=self.dashboard.apps_main(session.user),
                       stream="/stream")
        elif path == "/stream":
            self._stream(session, lambda: self.dashboard.apps_main(session.user))
        elif (app := _app_path(path, "/apps/")) is not None:
            main = self.dashboard.app_main(session, *app)
            if main is None:
                self._error(HTTPStatus.NOT_FOUND, "no such App, or you may not see it", session)
            else:
                self._page(HTTPStatus.OK, session, title=f"{app[1]} ({app[0]})", main=main,
                           stream="/stream" + views.app_path(*app))
        elif (app := _app_page(path, "compare")) is not None:
            self._compare(session, *app)
        elif (app := _app_path(path, "/stream/apps/")) is not None:
            namespace, name = app
            self._stream(session, lambda: self.dashboard.app_main(session, namespace, name))
        else:
            self._error(HTTPStatus.NOT_FOUND, "no such page", session)

    do_HEAD = do_GET

    def _compare(self, session: Session, namespace: str, name: str) -> None:
        query = {key: values[0] for key, values in parse_qs(self.path.partition("?")[2]).items() if values}
        before, after = query.get("from", ""), query.get("to", "")
        if not before or not after:
            self._error(HTTPStatus.BAD_REQUEST, "pick two history entries to compare (from and to)", session)
            return
        answer = self.dashboard.compare_main(session, namespace, name, before=before, after=after)
        if answer is None:
            self._error(HTTPStatus.NOT_FOUND, "no such App, or you may not see it", session)
            return
        status, main = answer
        self._page(status, session, title=f"{name} ({namespace}): compare", main=main)

    def do_POST(self) -> None:
        self.server.connections.answering(self.request)
        path = self.path.split("?", 1)[0]
        if path == "/login":
            self._login()
            return
        checked = self._checked_post()
        if checked is None:
            return
        session, form = checked
        if path == "/logout":
            self._respond(HTTPStatus.SEE_OTHER, "", location="/login",
                          cookies=(f"{TOKEN_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",))
            return
        target, _, action = path.rpartition("/")
        app = _app_path(target, "/apps/")
        if app is None or action not in ACTIONS:
            self._error(HTTPStatus.NOT_FOUND, "no such action", session)
            return
        namespace, name = app
        dashboard = self.dashboard
        if dashboard.reader.app(namespace, name) is None or not dashboard.visible(session.user, namespace, name):
            self._error(HTTPStatus.NOT_FOUND, "no such App, or you may not see it", session)
            return
        if not dashboard.options.actions:
            self._error(HTTPStatus.FORBIDDEN, "actions are off: the daemon runs without --ui-actions", session)
            return
        if not dashboard.may_act(session.user, namespace, name):
            self._error(HTTPStatus.FORBIDDEN, f"you may not patch App/{namespace}/{name}", session)
            return
        try:
            done = dashboard.act(session.user, namespace=namespace, name=name, action=action,
                                 revision=form.get("revision", ""))
        except (Forbidden, NotFound) as error:
            self._error(HTTPStatus.FORBIDDEN, f"the API server refused: {error}", session)
            return
        except ConfigError as error:
            self._error(HTTPStatus.CONFLICT, str(error), session)
            return
        except ClusterError as error:
            self._error(HTTPStatus.BAD_GATEWAY, f"the API server refused: {error}", session)
            return
        log.info("dashboard: %s of App/%s/%s by %s: %s", action, namespace, name, session.user.name or "anonymous",
                 done, extra={"app": f"{namespace}/{name}", "action": action, "user": session.user.name})
        self._respond(HTTPStatus.SEE_OTHER, "", location=views.app_path(namespace, name))

    # -- login ----------------------------------------------------------------------------

    def _login_page(self, *, error: str = "", status: int = HTTPStatus.OK) -> None:
        if not self.dashboard.authorizer.required:
            self._respond(HTTPStatus.SEE_OTHER, "", location="/")
            return
        session_id = self._cookies().get(SESSION_COOKIE, "")
        cookies: tuple[str, ...] = ()
        if len(session_id) < 32:
            session_id = secrets.token_urlsafe(32)
            cookies = (f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict",)
        self._page(status, None, title="Sign in", cookies=cookies,
                   main=views.login_main(error=error, csrf=csrf_token(self.dashboard.secret, session_id)))

    def _login(self) -> None:
        body = self.read_body(MAX_FORM)
        if body is None:
            return
        if not self.dashboard.authorizer.required:
            self._respond(HTTPStatus.SEE_OTHER, "", location="/")
            return
        form = {key: values[0] for key, values in parse_qs(body.decode(errors="replace")).items() if values}
        if not same_origin(self.headers.get("Origin"), self.headers.get("Host")) or not csrf_ok(
                self.dashboard.secret, self._cookies().get(SESSION_COOKIE, ""), form.get("csrf", "")):
            self._error(HTTPStatus.FORBIDDEN, "refused: the sign-in form did not come from this dashboard")
            return
        token = form.get("token", "").strip()
        try:
            user = self.dashboard.authorizer.authenticate(token) if token else None
        except ClusterError as error:
            self._login_page(error=f"cannot review the token: {error}", status=HTTPStatus.SERVICE_UNAVAILABLE)
            return
        if user is None:
            self._login_page(error="the API server does not accept this token", status=HTTPStatus.UNAUTHORIZED)
            return
        log.info("dashboard: %s signed in", user.name, extra={"user": user.name})
        self._respond(HTTPStatus.SEE_OTHER, "", location="/",
                      cookies=(f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict",))

    # -- live updates ---------------------------------------------------------------------

    def _stream(self, session: Session, render: Callable[[], str | None]) -> None:
        dashboard = self.dashboard
        if not dashboard.streams.acquire(blocking=False):
            self.close_connection = True
            self._respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many live pages open: retry later\n",
                          content_type="text/plain; charset=utf-8")
            return
        try:
            self.close_connection = True
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            if self.command != "HEAD":
                self._follow(session, render)
        except OSError:
            pass  # the page was closed
        finally:
            dashboard.streams.release()

    def _follow(self, session: Session, render: Callable[[], str | None]) -> None:
        dashboard = self.dashboard
        self.wfile.write(b"retry: 2000\n\n")
        self.wfile.flush()
        sent, version = "", -1
        last_update = time.monotonic()
        while True:
            if dashboard.authorizer.required and dashboard.authorizer.authenticate(session.user.token) is None:
                return
            main = render()
            if main is None:
                self.wfile.write(b"event: gone\ndata: gone\n\n")
                return
            if main != sent:
                data = "".join(f"data: {line}\n" for line in main.split("\n"))
                self.wfile.write(f"event: main\n{data}\n".encode())
                sent, last_update = main, time.monotonic()
            else:
                self.wfile.write(b": keepalive\n\n")
            self.wfile.flush()
            left = dashboard.options.stream_idle - (time.monotonic() - last_update)
            if left <= 0:
                return
            version = dashboard.reader.wait_for_change(version, timeout=min(KEEPALIVE_SECONDS, left))


def _app_page(path: str, page: str) -> tuple[str, str] | None:
    """`/apps/NS/NAME/PAGE` -> (NS, NAME)."""
    head, _, leaf = path.rpartition("/")
    return _app_path(head, "/apps/") if leaf == page else None


def _app_path(path: str, prefix: str) -> tuple[str, str] | None:
    """`/apps/NS/NAME` -> (NS, NAME)."""
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split("/")
    if len(parts) != 2 or not all(parts):
        return None
    namespace, name = unquote(parts[0]), unquote(parts[1])
    return namespace, name
