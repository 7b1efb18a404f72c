"""Markers left in a rendered edition where each recipient's own values go.

They are plain ASCII words so that no stage (Jinja escaping, MJML, premailer) alters them,
and personalisation is a string replacement instead of a render. Each render draws a key
of its own and the markers carry it (``__NL_EMAIL_<key>__``), stored with the edition: a
post, an intro or an image URL cannot name a marker it cannot know, so no content can take
the reader's address or links. Editions rendered before keys existed have the key ``""``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import cached_property

ROLES = ("email", "unsubscribe_url", "preferences_url", "reader")
# The reader part of tracked links (newsletter.analytics) where no email reader follows them:
# the archive and previews. The redirect leads on without counting such a click.
WEB_READER = "web"


def new_key() -> str:
    return secrets.token_hex(12)


@dataclass(frozen=True)
class Markers:
    """The markers of one render, made from its key."""

    key: str

    def marker(self, role: str) -> str:
        name = role.upper()
        return f"__NL_{name}_{self.key}__" if self.key else f"__NL_{name}__"

    @property
    def email(self) -> str:
        return self.marker("email")

    @property
    def unsubscribe_url(self) -> str:
        return self.marker("unsubscribe_url")

    @property
    def preferences_url(self) -> str:
        return self.marker("preferences_url")

    @cached_property
    def _roles(self) -> dict[str, str]:
        return {self.marker(role): role for role in ROLES}

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """Matches any of the markers, as a group (for ``split``)."""
        return re.compile("(" + "|".join(map(re.escape, self._roles)) + ")")

    def role(self, marker: str) -> str:
        return self._roles[marker]

    def context(self) -> dict[str, str]:
        """The template variables that stand for per-recipient values. The reader part is
        none: it goes into tracked URLs before the templates see them."""
        return {role: self.marker(role) for role in ROLES if role != "reader"}

    @property
    def reader(self) -> str:
        return self.marker("reader")

    def fill(
        self, body: str, *, email: str, unsubscribe_url: str, preferences_url: str,
        reader: str = WEB_READER,
    ) -> str:  # fmt: skip
        """``body`` with the markers replaced: values as they go into this body (escaped
        already for HTML). The slow path and the web views; personalisation at speed has
        its own."""
        values = dict(
            email=email, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url,
            reader=reader,
        )  # fmt: skip
        return self.pattern.sub(lambda match: values[self._roles[match.group(0)]], body)
