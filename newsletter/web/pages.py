"""Reader pages: server-rendered, no JavaScript, every action behind a POST.

Mail scanners follow GET links, so a GET only ever shows a page with a button; confirming,
unsubscribing and erasing happen on POST. The one-click unsubscribe POST of RFC 8058 is
answered with 200 and no redirect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.lists.service import ListError, lists_by_slug
from newsletter.models import Frequency, NewsletterList, Subscriber, SubscriptionStatus
from newsletter.subscriptions import readers
from newsletter.subscriptions.consent import tracking_notice
from newsletter.subscriptions.readers import Preferences
from newsletter.subscriptions.tokens import (
    PREFERENCES,
    UNSUBSCRIBE,
    ConfirmToken,
    InvalidToken,
    ReaderToken,
    make_token,
    read_confirm_token,
    read_token,
)
from newsletter.web.context import SIGNUP_WORDING, client, message, now, render, web
from newsletter.web.signup import SignupRefused, sign_up

router = APIRouter(tags=["reader pages"])

# A link whose reader is gone and whose id now belongs to someone else.
GONE = "this link belongs to a subscription that was deleted; it no longer works"


def _reader(token: ReaderToken) -> tuple[int, int, str]:
    return token.subscriber_id, token.list_id, token.key


Token = Annotated[str, Path(max_length=400, description="Signed token from an email link.")]
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CHECK_INBOX = (
    "If this address can be subscribed, we have sent it an email with a confirmation link.",
    "Follow that link to start your subscription. Nothing is sent until you do.",
)


# The preferences page after a form that redirects to it: ?done=<key> picks the sentence
# (only these, so a link cannot make the page say anything else).
UNSUBSCRIBED_ALL = "unsubscribed-all"
DONE = {UNSUBSCRIBED_ALL: "You are unsubscribed from every list."}


def _bad_link(request: Request, error: InvalidToken) -> HTMLResponse:
    return message(request, "This link does not work", str(error), status_code=400)


def _all_lists(request: Request) -> list[NewsletterList]:
    with session_scope(web(request).settings.database_url) as session:
        return list(session.scalars(select(NewsletterList).order_by(NewsletterList.name)))


@dataclass(frozen=True)
class SignupForm:
    """What the visitor typed, shown back in the form (escaped) when it needs fixing."""

    email: str = ""
    name: str = ""
    lists: tuple[str, ...] = ()
    frequency: str = "daily"


def _form_page(
    request: Request, form: SignupForm, error: str = "", status: int = 200
) -> HTMLResponse:
    lists = _all_lists(request)
    chosen = [nl for nl in lists if nl.slug in form.lists]
    brand = chosen[0].name if len(chosen) == 1 else web(request).settings.site_name
    description = chosen[0].description if len(chosen) == 1 else ""
    return render(
        request, "subscribe.html", status_code=status, lists=lists, form=form, error=error,
        brand=brand, description=description, wording=SIGNUP_WORDING,
        notices={nl.id: tracking_notice(nl) for nl in lists},
    )  # fmt: skip


@router.get("/subscribe", response_class=HTMLResponse, summary="Signup form")
def subscribe_form(
    request: Request,
    list_slug: Annotated[str | None, Query(alias="list", max_length=64)] = None,
) -> HTMLResponse:
    lists = _all_lists(request)
    preselected = [list_slug] if list_slug else ([lists[0].slug] if len(lists) == 1 else [])
    form = SignupForm(lists=tuple(preselected))
    return _form_page(request, form)


@router.post("/subscribe", response_class=HTMLResponse, summary="Submit the signup form")
def subscribe(
    request: Request,
    email: Annotated[str, Form(max_length=1000)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    lists: Annotated[list[str], Form(max_length=50)] = [],  # noqa: B006  (FastAPI copies it)
    frequency: Annotated[str, Form(max_length=20)] = "daily",
    website: Annotated[str, Form(max_length=1000)] = "",
) -> HTMLResponse:
    form = SignupForm(email, name, tuple(lists), frequency)
    try:
        sign_up(
            request, email=email, name=name, list_slugs=lists, frequency=frequency,
            honeypot=website, source="form",
        )  # fmt: skip
    except SignupRefused as error:
        return _form_page(request, form, error=f"Please check the form: {error}", status=400)
    return message(request, "Check your inbox", *CHECK_INBOX)


def _confirm_token(request: Request, token: str) -> ConfirmToken:
    settings = web(request).settings
    confirm = read_confirm_token(
        settings.secret_key, token, max_age_s=settings.confirm_token_max_age_hours * 3600,
        now=now(request),
    )  # fmt: skip
    _refuse_foreign(request, confirm.subscriber_id, confirm.key)
    return confirm


def _refuse_foreign(request: Request, subscriber_id: int, key: str) -> None:
    with session_scope(web(request).settings.database_url) as session:
        if readers.link_is_foreign(session, subscriber_id, key):
            raise InvalidToken(GONE)


@router.get("/confirm/{token}", response_class=HTMLResponse, summary="Confirmation page")
def confirm_page(request: Request, token: Token) -> HTMLResponse:
    settings = web(request).settings
    try:
        list_ids = _confirm_token(request, token).list_ids
    except InvalidToken as error:
        return _bad_link(request, error)
    with session_scope(settings.database_url) as session:
        names = list(
            session.scalars(select(NewsletterList.name).where(NewsletterList.id.in_(list_ids)))
        )
    if not names:
        return message(
            request,
            "This link does not work",
            "The lists it names no longer exist.",
            status_code=404,
        )
    return render(request, "confirm.html", token=token, list_names=", ".join(names))


@router.post("/confirm/{token}", response_class=HTMLResponse, summary="Confirm a subscription")
def confirm(request: Request, token: Token) -> HTMLResponse:
    state = web(request)
    settings = state.settings
    try:
        confirm_token = _confirm_token(request, token)
    except InvalidToken as error:
        return _bad_link(request, error)
    subscriber_id, list_ids = confirm_token.subscriber_id, confirm_token.list_ids
    with session_scope(settings.database_url) as session:
        result = readers.confirm(
            session, subscriber_id, list_ids, client=client(request, "link"), now=now(request)
        )
        confirmed = [nl.id for nl in result.newly_confirmed] if result else []
        names = (
            [nl.name for nl in (result.newly_confirmed + result.already_confirmed)]
            if result
            else []
        )
    if not names:
        return message(
            request, "Nothing to confirm",
            "This subscription was cancelled or has expired. You can sign up again at any time.",
            link={"url": "/subscribe", "label": "Sign up again"}, status_code=410,
        )  # fmt: skip
    if confirmed:
        state.handoff.send_notice("welcome", subscriber_id, confirmed)
    preferences = make_token(
        settings.secret_key, PREFERENCES, subscriber_id, list_ids[0], confirm_token.key
    )
    return message(
        request, "You're subscribed",
        f"Thanks for confirming. You will receive {', '.join(names)}.",
        link={"url": f"/preferences/{preferences}", "label": "Change your preferences"},
    )  # fmt: skip


def _reader_token(request: Request, purpose: str, token: str) -> ReaderToken:
    reader = read_token(web(request).settings.secret_key, purpose, token)
    _refuse_foreign(request, reader.subscriber_id, reader.key)
    return reader


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, summary="Unsubscribe page")
def unsubscribe_page(request: Request, token: Token) -> HTMLResponse:
    try:
        reader = _reader_token(request, UNSUBSCRIBE, token)
    except InvalidToken as error:
        return _bad_link(request, error)
    settings = web(request).settings
    with session_scope(settings.database_url) as session:
        subscriber = session.get(Subscriber, reader.subscriber_id)
        nl = session.get(NewsletterList, reader.list_id)
        if subscriber is None or nl is None:
            return message(request, "You're unsubscribed", "We hold no subscription for this link.")
        email, list_name = subscriber.email, nl.name
    preferences = make_token(settings.secret_key, PREFERENCES, *_reader(reader))
    return render(
        request, "unsubscribe.html", token=token, email=email, list_name=list_name,
        brand=list_name, preferences_url=f"/preferences/{preferences}",
    )  # fmt: skip


@router.post(
    "/unsubscribe/{token}",
    summary="Unsubscribe (RFC 8058 one-click, or the page's button)",
    responses={200: {"content": {"text/plain": {}, "text/html": {}}}},
)
def unsubscribe(
    request: Request,
    token: Token,
    one_click: Annotated[str | None, Form(alias="List-Unsubscribe", max_length=100)] = None,
    action: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        return PlainTextResponse(
            "Send the unsubscribe request as a form (application/x-www-form-urlencoded or "
            "multipart/form-data) with List-Unsubscribe=One-Click.",
            status_code=415,
        )
    is_one_click = one_click == "One-Click"
    if not is_one_click and action != "unsubscribe":
        return PlainTextResponse(
            "The request must contain List-Unsubscribe=One-Click.", status_code=400
        )
    try:
        reader = _reader_token(request, UNSUBSCRIBE, token)
    except InvalidToken as error:
        return PlainTextResponse(str(error), status_code=400)
    with session_scope(web(request).settings.database_url) as session:
        nl = readers.unsubscribe(
            session, reader.subscriber_id, reader.list_id,
            client=client(request, "one-click" if is_one_click else "page"), now=now(request),
        )  # fmt: skip
        list_name = nl.name if nl else "this list"
    if is_one_click:
        return PlainTextResponse(f"Unsubscribed from {list_name}.", status_code=200)
    settings = web(request).settings
    preferences = make_token(settings.secret_key, PREFERENCES, *_reader(reader))
    return message(
        request, "You're unsubscribed",
        f"You will not receive {list_name} any more. It takes effect at once.",
        link={"url": f"/preferences/{preferences}", "label": "Manage your other subscriptions"},
        brand=list_name,
    )  # fmt: skip


def _preferences_page(
    request: Request, token: str, reader: ReaderToken, *, notice: str = "", error: str = "",
    status: int = 200,
) -> HTMLResponse:  # fmt: skip
    with session_scope(web(request).settings.database_url) as session:
        subscriber = session.get(Subscriber, reader.subscriber_id)
        if subscriber is None:
            return message(
                request, "Nothing stored", "We hold no data for this link any more.",
                status_code=404,
            )  # fmt: skip
        lists = list(session.scalars(select(NewsletterList).order_by(NewsletterList.name)))
        active = [s for s in subscriber.subscriptions if s.status == SubscriptionStatus.CONFIRMED]
        frequency = active[0].frequency.value if active else Frequency.DAILY.value
        paused = bool(active) and all(s.paused_at is not None for s in active)
        return render(
            request, "preferences.html", status_code=status, token=token,
            email=subscriber.email, lists=lists, subscribed={s.list_id for s in active},
            frequency=frequency, paused=paused, notice=notice, error=error,
            notices={nl.id: tracking_notice(nl) for nl in lists},
        )  # fmt: skip


@router.get("/preferences/{token}", response_class=HTMLResponse, summary="Preferences page")
def preferences_page(
    request: Request,
    token: Token,
    done: Annotated[
        str, Query(max_length=40, description="What the form before did (a 303 says so).")
    ] = "",
) -> HTMLResponse:
    try:
        reader = _reader_token(request, PREFERENCES, token)
    except InvalidToken as error:
        return _bad_link(request, error)
    return _preferences_page(request, token, reader, notice=DONE.get(done, ""))


@router.post("/preferences/{token}", response_class=HTMLResponse, summary="Save preferences")
def save_preferences(
    request: Request,
    token: Token,
    lists: Annotated[list[str], Form(max_length=50)] = [],  # noqa: B006  (FastAPI copies it)
    frequency: Annotated[str, Form(max_length=20)] = "daily",
    paused: Annotated[str, Form(max_length=10)] = "",
) -> HTMLResponse:
    try:
        reader = _reader_token(request, PREFERENCES, token)
    except InvalidToken as error:
        return _bad_link(request, error)
    if frequency not in (Frequency.DAILY, Frequency.WEEKLY):
        return _preferences_page(
            request, token, reader, error="Choose daily or weekly.", status=400
        )
    try:
        with session_scope(web(request).settings.database_url) as session:
            chosen = lists_by_slug(session, lists) if lists else []
            wanted = Preferences(
                frozenset(nl.id for nl in chosen), Frequency(frequency), paused == "on"
            )
            readers.update_preferences(
                session, reader.subscriber_id, wanted, client=client(request, "preferences"),
                now=now(request),
            )  # fmt: skip
    except (ListError, readers.UnknownList) as error:
        return _preferences_page(request, token, reader, error=str(error), status=400)
    return _preferences_page(request, token, reader, notice="Your preferences are saved.")


@router.post(
    "/preferences/{token}/unsubscribe-all", response_class=HTMLResponse,
    summary="Unsubscribe from every list",
    description="Then 303 to the preferences page, which says so.",
)  # fmt: skip
def unsubscribe_everything(request: Request, token: Token) -> Response:
    try:
        reader = _reader_token(request, PREFERENCES, token)
    except InvalidToken as error:
        return _bad_link(request, error)
    with session_scope(web(request).settings.database_url) as session:
        readers.unsubscribe_all(
            session, reader.subscriber_id, client=client(request, "preferences"), now=now(request)
        )
    # See the result on a page of its own, so the address is not this POST's and a reload
    # or Back does not send it again.
    return RedirectResponse(f"/preferences/{token}?done={UNSUBSCRIBED_ALL}", status_code=303)


@router.get("/preferences/{token}/data.json", summary="Download my data (JSON)")
def download_data(request: Request, token: Token) -> Response:
    try:
        reader = _reader_token(request, PREFERENCES, token)
    except InvalidToken as error:
        return PlainTextResponse(str(error), status_code=400)
    with session_scope(web(request).settings.database_url) as session:
        data = readers.export_data(session, reader.subscriber_id)
    if data is None:
        return PlainTextResponse("We hold no data for this link.", status_code=404)
    return JSONResponse(
        data, headers={"content-disposition": 'attachment; filename="my-newsletter-data.json"'}
    )


@router.post("/preferences/{token}/erase", response_class=HTMLResponse, summary="Delete my data")
def erase(
    request: Request,
    token: Token,
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> HTMLResponse:
    try:
        reader = _reader_token(request, PREFERENCES, token)
    except InvalidToken as error:
        return _bad_link(request, error)
    if confirm != "yes":
        return _preferences_page(
            request, token, reader, status=400,
            error="Tick the box to confirm that you want your data deleted.",
        )  # fmt: skip
    with session_scope(web(request).settings.database_url) as session:
        readers.erase(
            session, reader.subscriber_id, client=client(request, "preferences"), now=now(request)
        )
    return message(
        request, "Your data is deleted",
        "We have deleted your address and subscriptions. You will receive nothing more from us.",
    )  # fmt: skip
