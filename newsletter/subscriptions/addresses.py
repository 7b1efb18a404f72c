"""Email addresses as readers type them, validated and normalised."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """Not an address we can deliver to; the message explains why."""


def normalise_address(value: str) -> str:
    """The canonical form: internationalised domain handled, domain lower-cased.

    The local part keeps its case (RFC 5321); lookups compare case-insensitively.
    """
    if any(c in value for c in "\r\n\x00"):
        raise InvalidAddress("an email address cannot contain line breaks")
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidAddress(
            f"{value.strip()[:80]!r} is not a valid email address: {error}"
        ) from None
    return str(result.normalized)


def mailbox(address: str) -> str:
    """The inbox an address reaches, for counting what is sent to it: the address lower-cased,
    with any ``+tag`` dropped from its local part.

    ``victim+1@example.com`` and ``Victim+2@example.com`` land in one inbox, so limits on
    mail to an address count them as one.
    """
    local, at, domain = address.lower().rpartition("@")
    if not at:
        return address.lower()
    return f"{local.split('+', 1)[0] or local}@{domain}"
