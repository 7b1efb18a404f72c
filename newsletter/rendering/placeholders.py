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
