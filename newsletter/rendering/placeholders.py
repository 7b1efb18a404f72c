"""Markers left in a rendered edition where each recipient's own values go.

They are plain ASCII words so that no stage (Jinja escaping, MJML, premailer) alters them,
and personalisation is a string replacement instead of a render.
"""

EMAIL = "__NL_EMAIL__"
UNSUBSCRIBE_URL = "__NL_UNSUBSCRIBE_URL__"
PREFERENCES_URL = "__NL_PREFERENCES_URL__"

ALL = (EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL)


def context() -> dict[str, str]:
    """The template variables that stand for per-recipient values."""
    return {
        "email": EMAIL,
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "preferences_url": PREFERENCES_URL,
    }


def fill(body: str, *, email: str, unsubscribe_url: str, preferences_url: str) -> str:
    """``body`` with the markers replaced: values as they go into this body (escaped already
    for HTML). The slow path and the web views; personalisation at speed has its own."""
    for marker, value in (
        (EMAIL, email), (UNSUBSCRIBE_URL, unsubscribe_url), (PREFERENCES_URL, preferences_url)
    ):  # fmt: skip
        body = body.replace(marker, value)
    return body
