"""The web console's routes: each reads the session, asks :mod:`agent.web.access` whether the
viewer may, and calls the same use case in :mod:`agent.app` that the CLI calls.

Starlette (with uvicorn) because it is small, maintained, async with a thread pool for the
blocking use cases, and comes with what a server-rendered console needs and no more: signed
session cookies, Jinja2 templates, static files, form parsing.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from agent import app as usecases
from agent import config, controls
from agent.errors import ConfigError, Problem, ProviderError, SignInFailed, UserError
from agent.providers.registry import MICROSOFT_LOGIN
from agent.store import DRAFTED, NEEDS_ATTENTION, PLANNED, wall_clock
from agent.web import access, figures, i18n, oidc
from agent.web.guard import BodyLimit, RateLimit, SecurityHeaders, csrf_ok, csrf_token
from agent.web.i18n import N_

HERE = Path(__file__).parent
MAX_RULES_UPLOAD = 256 * 1024  # bytes: a rule file is a few kilobytes
SESSION_KEY_ENV = "FOLLOWUP_WEB_SESSION_KEY"
# A Microsoft app whose redirect URI is on the "Web" platform redeems codes with a secret.
MICROSOFT_SECRET_ENV = "FOLLOWUP_WEB_MICROSOFT_SECRET"


@dataclass
class Console:
    """What every route needs: the config's path, the clock, the identity providers."""

    config_path: Path
    demo: bool
    clock: Callable[[], datetime]
    session_hours: float
    limiter: RateLimit
    public_url: str
    # Seconds since the epoch, for a session's age (the real clock even when ``clock`` replays).
    seconds: Callable[[], float] = time.time

    def settings(self) -> config.Settings:
        return config.load(self.config_path)

    def issuers(self, settings: config.Settings) -> dict[str, oidc.Issuer]:
        return issuers(settings)


def issuers(settings: config.Settings) -> dict[str, oidc.Issuer]:
    """The identity providers the console offers, from the mailboxes' app registrations."""
    web = settings.web
    found: dict[str, oidc.Issuer] = {}
    secrets_file = web.google_client_secrets or next(
        (
            m.client_secrets
            for m in settings.mailboxes
            if m.provider == "gmail" and m.client_secrets
        ),
        None,
    )
    if secrets_file is not None:
        # An unreadable client JSON leaves the button off; `rules check` says why.
        with suppress(SignInFailed):
            found["google"] = oidc.google_issuer(secrets_file, web.google_issuer)
    outlook = next((m for m in settings.mailboxes if m.provider == "outlook" and m.client_id), None)
    client_id = web.microsoft_client_id or (outlook.client_id if outlook else "")
    if client_id:
        tenant = web.microsoft_tenant or (outlook.tenant if outlook else "common")
        found["microsoft"] = oidc.microsoft_issuer(
            client_id,
            tenant,
            web.microsoft_authority or MICROSOFT_LOGIN,
            config._secret_from_environment(MICROSOFT_SECRET_ENV)[0],
        )
    return found


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("https", "http") else ""


def consent_origins(settings: config.Settings) -> set[str]:
    """Where a form of the console may lead by a redirect: the consent pages of the identity
    providers the mailboxes connect through."""
    found = {_origin(settings.web.microsoft_authority or MICROSOFT_LOGIN)}
    files = [settings.web.google_client_secrets, *(m.client_secrets for m in settings.mailboxes)]
    for path in files:
        if path is None:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        entry = data.get("web") or data.get("installed") or {}
        found.add(_origin(str(entry.get("auth_uri", ""))))
    return {o for o in found if o}


def session_key(demo: bool) -> str:
    """The key signing session cookies: ``FOLLOWUP_WEB_SESSION_KEY``, else one derived from the
    key that seals stored tokens (so a restart keeps people signed in), else (demo) random."""
    given = os.environ.get(SESSION_KEY_ENV, "").strip()
    if given:
        return given
    from agent.providers.tokens import KEY_ENV, KEY_FILE_ENV, Vault

    if os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV):
        Vault.from_environment()  # a clear error for a bad key
        raw = os.environ.get(KEY_ENV, "").strip()
        if not raw:
            raw = Path(os.environ[KEY_FILE_ENV]).read_text().strip()
        return hmac.new(raw.encode(), b"followup web sessions", sha256).hexdigest()
    if demo:
        return secrets.token_hex(32)
    raise ConfigError(
        [
            Problem(
                SESSION_KEY_ENV,
                "",
                f"no key to sign sessions: set {SESSION_KEY_ENV} or FOLLOWUP_SECRET_KEY "
                "(from `followup keygen`)",
            )
        ]
    )


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.autoescape = True  # every page: client text is data, never markup


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _viewer(request: Request) -> access.Viewer | None:
    c = _console(request)
    email = request.session.get("user")
    at = request.session.get("at")
    if not isinstance(email, str) or not isinstance(at, int | float):
        return None
    if c.seconds() - at > c.session_hours * 3600:  # absolute expiry, whatever the cookie says
        request.session.clear()
        return None
    return access.viewer(c.settings(), email, demo=c.demo)


def _need_viewer(request: Request) -> access.Viewer:
    v = _viewer(request)
    if v is None:
        raise HTTPException(303, headers={"Location": "/signin"})
    return v


def _render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    viewer: access.Viewer | None = None,
    status: int = 200,
) -> Response:
    lang = i18n.choose(
        viewer.language if viewer else "", request.headers.get("accept-language", "")
    )
    zone = viewer.zone if viewer else "UTC"
    tr = i18n.translations(lang)
    flash = request.session.pop("flash", None)
    return templates.TemplateResponse(
        request,
        name,
        {
            **context,
            "viewer": viewer,
            "csrf": csrf_token(request.session),
            "flash": flash if isinstance(flash, str) else "",
            "lang": lang,
            "_": tr.gettext,
            "ngettext": tr.ngettext,
            "when": lambda dt, z=None: i18n.when(dt, z or zone, lang),
            "zone": zone,
            "demo": _console(request).demo,
        },
        status_code=status,
    )


async def _form(request: Request) -> dict[str, str | bytes]:
    """The posted form (a file as its first bytes past the limit), refused (403) without this
    session's CSRF token."""
    fields: dict[str, str | bytes] = {}
    async with request.form(max_files=1, max_fields=20, max_part_size=MAX_RULES_UPLOAD) as form:
        for name, value in form.items():
            if isinstance(value, UploadFile):
                fields[name] = await value.read(MAX_RULES_UPLOAD + 1)
            else:
                fields[name] = value
    if not csrf_ok(request.session, fields.get("csrf")):
        raise HTTPException(403, "This form has expired or did not come from this console.")
    return fields


def _client_key(request: Request) -> str:
    return request.client.host if request.client else "?"


def _who(v: access.Viewer) -> str:
    return f"{v.name} <{v.email}> (console)"


# -- sign-in ------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def home(request: Request) -> Response:
    v = _viewer(request)
    return RedirectResponse(v.home if v else "/signin", 303)


# Refusals shown on the error page, in the viewer's language (listed for the catalogs).
REFUSALS = (
    N_("This mailbox is not yours."),
    N_("No such note in this mailbox."),
    N_("You do not lead this team."),
    N_("This form has expired or did not come from this console."),
    N_("This connection was not started here, or it expired."),
)
SIGN_IN_ERRORS = {
    "denied": N_("This account may not use the console. Ask an administrator to add it."),
    "failed": N_("The sign-in did not complete. Start again."),
    "busy": N_("Too many sign-in attempts. Wait a minute and try again."),
}


async def signin(request: Request) -> Response:
    c = _console(request)
    settings = await run_in_threadpool(c.settings)
    error = SIGN_IN_ERRORS.get(request.query_params.get("e", ""), "")
    return _render(
        request,
        "signin.html",
        {
            "issuers": list(c.issuers(settings).values()),
            "people": access.demo_people(settings) if c.demo else [],
            "error": error,
        },
    )


def _redirect_uri(request: Request, issuer: str) -> str:
    base = _console(request).public_url or str(request.base_url).rstrip("/")
    return f"{base}/auth/{issuer}"


async def signin_start(request: Request) -> Response:
    c = _console(request)
    if not c.limiter.allow(_client_key(request)):
        return RedirectResponse("/signin?e=busy", 303)
    settings = await run_in_threadpool(c.settings)
    issuer = c.issuers(settings).get(request.path_params["issuer"])
    if issuer is None:
        raise HTTPException(404)
    try:
        url, pending = await run_in_threadpool(
            oidc.begin, issuer, _redirect_uri(request, issuer.name)
        )
    except SignInFailed:
        return RedirectResponse("/signin?e=failed", 303)
    request.session["pending"] = pending.as_json()
    return RedirectResponse(url, 303)


def _signed_in(request: Request, email: str) -> None:
    # A new session on sign-in: nothing from before (a planted cookie) carries over.
    request.session.clear()
    request.session["user"] = email
    request.session["at"] = int(_console(request).seconds())
    csrf_token(request.session)


async def signin_return(request: Request) -> Response:
    c = _console(request)
    if not c.limiter.allow(_client_key(request)):
        return RedirectResponse("/signin?e=busy", 303)
    settings = await run_in_threadpool(c.settings)
    issuer = c.issuers(settings).get(request.path_params["issuer"])
    if issuer is None:
        raise HTTPException(404)
    pending = oidc.Pending.from_json(request.session.pop("pending", None))
    params = {k: v[:2048] for k, v in request.query_params.items()}
    try:
        identity = await run_in_threadpool(
            oidc.finish, issuer, _redirect_uri(request, issuer.name), pending, params
        )
    except SignInFailed:
        return RedirectResponse("/signin?e=failed", 303)
    if access.viewer(settings, identity.email, demo=False) is None:
        return RedirectResponse("/signin?e=denied", 303)
    _signed_in(request, identity.email)
    return RedirectResponse("/", 303)


async def signin_demo(request: Request) -> Response:
    c = _console(request)
    if not c.demo:
        raise HTTPException(404)
    if not c.limiter.allow(_client_key(request)):
        return RedirectResponse("/signin?e=busy", 303)
    form = await _form(request)
    settings = await run_in_threadpool(c.settings)
    email = str(form.get("email", ""))
    if email not in {p[0] for p in access.demo_people(settings)}:
        return RedirectResponse("/signin?e=denied", 303)
    _signed_in(request, email)
    return RedirectResponse("/", 303)


async def signout(request: Request) -> Response:
    await _form(request)
    request.session.clear()
    return RedirectResponse("/signin", 303)


# -- the rep's page -------------------------------------------------------------------------


def _mailbox_of(request: Request, v: access.Viewer) -> str:
    mailbox = request.path_params["mailbox"]
    if not v.may_see_mailbox(mailbox):
        raise HTTPException(403, "This mailbox is not yours.")
    return str(mailbox)


def _rep_page(c: Console, mailbox: str) -> dict[str, Any]:
    now = c.clock()
    settings = c.settings()
    st = usecases.status(c.config_path, mailbox=mailbox, now=now.isoformat())
    drafts: list[usecases.Shown] = []
    for row in st.outbox:
        if row["status"] in (DRAFTED, NEEDS_ATTENTION) and len(drafts) < 20:
            try:
                shown = usecases.outbox_show(c.config_path, int(str(row["id"])), mailbox=mailbox)
            except UserError:
                continue
            drafts.append(shown)
    scheduled: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in st.outbox:
        if row["status"] == PLANNED and row["kind"] in controls.CHASES:
            scheduled[str(row["client"] or "")].append(row)
    decided = usecases.decisions(c.config_path, mailbox, limit=60)
    held = controls.Controls.from_decisions(
        usecases.decisions(c.config_path, mailbox, limit=10_000)
    )
    threads = {m_thread for m_thread in held.stopped} | set(held.snoozed)
    m = settings.mailbox(mailbox)
    # A thread shown by what the rep knows it by: the client and the subject.
    labels: dict[str, str] = {}
    for row in st.outbox:
        labels.setdefault(str(row["thread_id"]), str(row["client"] or ""))
    for p in st.promises:
        labels[p.thread_id] = f"{p.client} · {p.subject}"
    return {
        "mailbox": m,
        "thread_labels": labels,
        "now": now,
        "status": st,
        "drafts": drafts,
        "scheduled": dict(sorted(scheduled.items())),
        "decisions": [d for d in decided if not str(d["subject_id"]).startswith("label:")],
        "held": held,
        "held_threads": sorted(threads),
        "snooze_default": (now + timedelta(days=7)).astimezone(ZoneInfo(m.zone)).date(),
        "stream": next((r for r in st.mailboxes if r["mailbox"] == mailbox), None),
        "connected": usecases.connected(c.config_path, mailbox),
    }


async def rep(request: Request) -> Response:
    v = _need_viewer(request)
    mailbox = _mailbox_of(request, v)
    c = _console(request)
    data = await run_in_threadpool(_rep_page, c, mailbox)
    return _render(request, "rep.html", data, viewer=v)


async def note(request: Request) -> Response:
    v = _need_viewer(request)
    mailbox = _mailbox_of(request, v)
    c = _console(request)
    ident = request.path_params["ident"]
    try:
        shown = await run_in_threadpool(
            lambda: usecases.outbox_show(c.config_path, ident, mailbox=mailbox)
        )
    except UserError as exc:
        raise HTTPException(404, "No such note in this mailbox.") from exc
    return _render(request, "note.html", {"shown": shown, "mailbox": mailbox}, viewer=v)


async def _act(request: Request, work: Callable[[], str]) -> Response:
    """Run a use case; its summary (or its problems) is shown on the rep's page."""
    try:
        request.session["flash"] = await run_in_threadpool(work)
    except UserError as exc:
        request.session["flash"] = "; ".join(p.message for p in exc.problems)[:500]
    except ProviderError as exc:
        request.session["flash"] = f"Not done: {exc}"[:500]
    return RedirectResponse(f"/rep/{request.path_params['mailbox']}", 303)


async def note_decide(request: Request) -> Response:
    v = _need_viewer(request)
    mailbox = _mailbox_of(request, v)
    await _form(request)
    c = _console(request)
    ident = request.path_params["ident"]
    if request.path_params["act"] not in ("approve", "cancel"):
        raise HTTPException(404)
    approve = request.path_params["act"] == "approve"

    def work() -> str:
        outcome = usecases.outbox_decide(
            c.config_path, ident, approve=approve, who=_who(v), mailbox=mailbox, now=c.clock()
        )
        return f"#{ident}: {outcome.status} {outcome.detail}".strip()

    return await _act(request, work)


async def thread_act(request: Request) -> Response:
    v = _need_viewer(request)
    mailbox = _mailbox_of(request, v)
    form = await _form(request)
    c = _console(request)
    act = request.path_params["act"]
    if act not in ("snooze", "stop", "resume"):
        raise HTTPException(404)
    thread_id = str(form.get("thread_id", ""))[:1000]
    until = str(form.get("until", ""))[:40] or None
    note_text = str(form.get("note", ""))[:500]

    def work() -> str:
        acted = usecases.thread_control(
            c.config_path,
            thread_id,
            act,
            who=_who(v),
            until=until,
            note=note_text,
            now=c.clock(),
            mailbox=mailbox,
        )
        return f"{acted.summary}; {acted.withdrawn} planned notes moved"

    return await _act(request, work)


async def promise_act(request: Request) -> Response:
    v = _need_viewer(request)
    mailbox = _mailbox_of(request, v)
    form = await _form(request)
    c = _console(request)
    key = str(form.get("key", ""))[:1000]
    note_text = str(form.get("note", ""))[:500]

    def work() -> str:
        acted = usecases.promise_done(
            c.config_path, key, who=_who(v), note=note_text, now=c.clock(), mailbox=mailbox
        )
        return f"{acted.summary}; {acted.withdrawn} planned notes withdrawn"

    return await _act(request, work)


# -- connecting the rep's mailbox --------------------------------------------------------------


def _connect_uri(request: Request, provider: str) -> str:
    base = _console(request).public_url or str(request.base_url).rstrip("/")
    return f"{base}/connect/{provider}"


async def connect_start(request: Request) -> Response:
    v = _need_viewer(request)
    mailbox = _mailbox_of(request, v)
    await _form(request)
    c = _console(request)
    if c.demo:
        request.session["flash"] = "The demo's mailboxes are folders: there is nothing to connect."
        return RedirectResponse(f"/rep/{mailbox}", 303)
    settings = await run_in_threadpool(c.settings)
    provider = settings.mailbox(mailbox).provider
    try:
        url, pending = await run_in_threadpool(
            usecases.connect_begin, c.config_path, mailbox, _connect_uri(request, provider)
        )
    except (UserError, ProviderError) as exc:
        request.session["flash"] = _problem_text(exc)
        return RedirectResponse(f"/rep/{mailbox}", 303)
    request.session["connect"] = {"mailbox": mailbox, "provider": provider, **pending}
    return RedirectResponse(url, 303)


def _problem_text(exc: Exception) -> str:
    if isinstance(exc, UserError):
        return "; ".join(p.message for p in exc.problems)[:500]
    return f"Not done: {exc}"[:500]


async def connect_return(request: Request) -> Response:
    v = _need_viewer(request)
    c = _console(request)
    provider = request.path_params["provider"]
    pending = request.session.pop("connect", None)
    expired = "This connection was not started here, or it expired."
    if not isinstance(pending, dict) or pending.get("provider") != provider:
        raise HTTPException(400, expired)
    if not v.may_see_mailbox(str(pending.get("mailbox"))):
        raise HTTPException(400, expired)
    mailbox = str(pending["mailbox"])
    state = request.query_params.get("state", "")
    if not secrets.compare_digest(state, str(pending.get("state", ""))):
        raise HTTPException(400, expired)
    params = {k: val[:2048] for k, val in request.query_params.items()}
    if not params.get("code"):
        request.session["flash"] = "The mailbox was not connected; try again."
        return RedirectResponse(f"/rep/{mailbox}", 303)

    def work() -> str:
        account = usecases.connect_finish(
            c.config_path,
            mailbox,
            _connect_uri(request, provider),
            pending,
            params,
            now=c.clock(),
        )
        return f"Connected {mailbox} as {account}: the first sync starts within a minute."

    request.path_params["mailbox"] = mailbox
    return await _act(request, work)


async def disconnect(request: Request) -> Response:
    v = _need_viewer(request)
    mailbox = _mailbox_of(request, v)
    await _form(request)
    c = _console(request)

    def work() -> str:
        return usecases.disconnect(c.config_path, mailbox, who=_who(v), now=c.clock()).summary

    return await _act(request, work)


# -- the lead's page ------------------------------------------------------------------------


def _team_of(request: Request, v: access.Viewer) -> str:
    team = request.path_params["team"]
    if not v.may_lead(team):
        raise HTTPException(403, "You do not lead this team.")
    return str(team)


def _lead_page(c: Console, team: str, draft_rules: Path | None) -> dict[str, Any]:
    now = c.clock()
    settings = c.settings()
    boxes = access.team_mailboxes(settings, team)
    sim = usecases.simulate(c.config_path, "30d", now=now.isoformat())
    st = usecases.status(c.config_path, now=now.isoformat())
    zones = {m.name: m.zone for m in settings.mailboxes}
    due_today: dict[str, list[object]] = {mb: [] for mb in boxes}
    breaches = []
    for p in st.promises:
        if p.mailbox not in boxes:
            continue
        if p.state.value == "breached":
            breaches.append(p)
        zone = ZoneInfo(zones[p.mailbox])
        if p.deadline.astimezone(zone).date() == now.astimezone(zone).date():
            due_today[p.mailbox].append(p)
    notes_today: dict[str, list[dict[str, object]]] = {mb: [] for mb in boxes}
    for row in st.outbox:
        mb = str(row["mailbox"])
        due = row["due"]
        if mb in boxes and isinstance(due, datetime):
            zone = ZoneInfo(zones[mb])
            if due.astimezone(zone).date() == now.astimezone(zone).date():
                notes_today[mb].append(row)
    data: dict[str, Any] = {
        "team": team,
        "now": now,
        "mailboxes": [m for m in settings.mailboxes if m.name in boxes],
        "figures": figures.team_figures(sim, boxes, team),
        "charts": figures.CHART_NAMES,
        "chart_weeks": settings.report.weeks,
        "breaches": breaches,
        "due_today": due_today,
        "notes_today": notes_today,
        "zones": zones,
        "rules": usecases.rules_in_force(c.config_path),
        "diff": None,
        "draft_problems": [],
    }
    if draft_rules is not None:
        try:
            draft = usecases.simulate(
                c.config_path, "30d", rules_path=draft_rules, now=now.isoformat()
            )
        except UserError as exc:
            data["draft_problems"] = [
                Problem(draft_rules.name, p.where, p.message) for p in exc.problems
            ]
        else:
            data["diff"] = figures.diff(sim, draft, boxes)
    return data


async def lead(request: Request) -> Response:
    v = _need_viewer(request)
    team = _team_of(request, v)
    data = await run_in_threadpool(_lead_page, _console(request), team, None)
    return _render(request, "lead.html", data, viewer=v)


async def lead_chart(request: Request) -> Response:
    v = _need_viewer(request)
    team = _team_of(request, v)
    name = str(request.path_params["name"])
    if name not in figures.CHART_NAMES:
        raise HTTPException(404, "No such chart.")
    c = _console(request)
    boxes = access.team_mailboxes(c.settings(), team)
    png = await run_in_threadpool(
        figures.team_chart_png, c.config_path, boxes, team, name, c.clock()
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


async def lead_simulate(request: Request) -> Response:
    v = _need_viewer(request)
    team = _team_of(request, v)
    form = await _form(request)
    upload = form.get("rules")
    content = upload if isinstance(upload, bytes) else b""
    c = _console(request)
    if not content or len(content) > MAX_RULES_UPLOAD:
        request.session["flash"] = "Choose a rule file (.toml) of at most 256 KB."
        return RedirectResponse(f"/lead/{team}", 303)
    with tempfile.TemporaryDirectory(prefix="followup-draft-") as folder:
        path = Path(folder) / "draft.toml"  # the name is ours, never the upload's
        path.write_bytes(content)
        data = await run_in_threadpool(_lead_page, c, team, path)
    return _render(request, "lead.html", data, viewer=v)


# -- errors ---------------------------------------------------------------------------------


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (301, 302, 303, 307) and exc.headers:
        return RedirectResponse(exc.headers["Location"], exc.status_code)
    detail = exc.detail if exc.status_code in (400, 403, 404) else ""
    return _render(
        request,
        "error.html",
        {"code": exc.status_code, "detail": detail},
        viewer=_viewer(request),
        status=exc.status_code,
    )


async def user_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UserError)
    return _render(
        request,
        "error.html",
        {"code": 400, "detail": "", "problems": exc.problems},
        viewer=_viewer(request),
        status=400,
    )


def create_app(
    config_path: Path,
    *,
    demo: bool = False,
    clock: Callable[[], datetime] = wall_clock,
    key: str | None = None,
    seconds: Callable[[], float] = time.time,
) -> Starlette:
    """The console over the config at ``config_path``. ``demo``: the demo's people may sign in
    with a button (only ever over the demo's data). ``clock``: the console's "now"."""
    settings = config.load(config_path)
    web = settings.web
    secure = web.secure_cookies and not demo
    c = Console(
        config_path=config_path,
        demo=demo,
        clock=clock,
        session_hours=web.session_hours,
        limiter=RateLimit(web.sign_in_per_minute),
        public_url=web.public_url,
        seconds=seconds,
    )
    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/signin", signin),
        Route("/signin/demo", signin_demo, methods=["POST"]),
        Route("/signin/{issuer:str}", signin_start),
        Route("/auth/{issuer:str}", signin_return),
        Route("/signout", signout, methods=["POST"]),
        Route("/rep/{mailbox:str}", rep),
        Route("/rep/{mailbox:str}/notes/{ident:int}", note),
        Route(
            "/rep/{mailbox:str}/notes/{ident:int}/{act:str}",
            note_decide,
            methods=["POST"],
        ),
        Route("/rep/{mailbox:str}/threads/{act:str}", thread_act, methods=["POST"]),
        Route("/rep/{mailbox:str}/promises/done", promise_act, methods=["POST"]),
        Route("/rep/{mailbox:str}/connect", connect_start, methods=["POST"]),
        Route("/rep/{mailbox:str}/disconnect", disconnect, methods=["POST"]),
        Route("/connect/{provider:str}", connect_return),
        Route("/lead/{team:str}", lead),
        Route("/lead/{team:str}/charts/{name:str}.png", lead_chart),
        Route("/lead/{team:str}/simulate", lead_simulate, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    application = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders, hsts=secure, form_targets=consent_origins(settings)),
            Middleware(BodyLimit, limit=MAX_RULES_UPLOAD + 64 * 1024),
            Middleware(
                SessionMiddleware,
                secret_key=key or session_key(demo),
                session_cookie="followup_session",
                max_age=int(web.session_hours * 3600),
                same_site="lax",  # the identity provider's redirect back must carry it
                https_only=secure,
            ),
        ],
        exception_handlers={HTTPException: http_error, UserError: user_error},
    )
    application.state.console = c
    return application
