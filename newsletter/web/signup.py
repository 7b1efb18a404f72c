"""The signup flow shared by the form and the API."""

from __future__ import annotations

import unicodedata

from fastapi import Request

from newsletter.db import session_scope
from newsletter.lists.service import ListError, lists_by_slug
from newsletter.models import Frequency
from newsletter.subscriptions.addresses import InvalidAddress, mailbox, normalise_address
from newsletter.subscriptions.readers import request_signup
from newsletter.web.context import SIGNUP_WORDING, client, now, web

MAX_LISTS = 20


class SignupRefused(ValueError):
    """The signup cannot be accepted as sent; the message says what to fix."""


def _clean_name(name: str) -> str:
    name = name.strip()
    if len(name) > 200:
        raise SignupRefused("name: at most 200 characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise SignupRefused("name: line breaks and control characters are not allowed")
    return name


def sign_up(
    request: Request,
    *,
    email: str,
    name: str,
    list_slugs: list[str],
    frequency: str,
    honeypot: str,
    source: str,
) -> None:
    """Validate, rate-limit and record a signup, then queue the confirmation email.

    Raises SignupRefused, RateLimited (from the limiter), or returns silently, including
    for a bot that filled the honeypot and for an address that is already subscribed.
    """
    state = web(request)
    who = client(request, source)
    state.limiter.check_ip(who.ip)
    if honeypot:
        return  # a bot: answer as if it worked, store nothing
    if len(email) > 320:
        raise SignupRefused("email: at most 320 characters")
    try:
        address = normalise_address(email)
    except InvalidAddress as error:
        raise SignupRefused(str(error)) from None
    if frequency not in (Frequency.DAILY, Frequency.WEEKLY):
        raise SignupRefused("frequency: choose daily or weekly")
    if not list_slugs:
        raise SignupRefused("lists: choose at least one list")
    if len(list_slugs) > MAX_LISTS:
        raise SignupRefused(f"lists: at most {MAX_LISTS}")
    clean_name = _clean_name(name)
    # Counted per inbox: a +tag must not buy another round of emails to the same person.
    state.limiter.check_address(mailbox(address))
    with session_scope(state.settings.database_url) as session:
        try:
            lists = lists_by_slug(session, list_slugs)
        except ListError as error:
            raise SignupRefused(f"lists: {error}") from None
        result = request_signup(
            session, email=address, name=clean_name, lists=lists,
            frequency=Frequency(frequency), client=who, wording=SIGNUP_WORDING, now=now(request),
        )  # fmt: skip
    if result.pending_list_ids:
        state.handoff.send_notice("confirm", result.subscriber_id, result.pending_list_ids)
