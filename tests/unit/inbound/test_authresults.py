"""Whether our mail server's Authentication-Results vouch for a message's From address."""

from __future__ import annotations

import pytest

from newsletter.inbound.authresults import authenticated_from

ANN = "ann@example.com"


def message(*results: str, sender: str = f"Ann <{ANN}>") -> bytes:
    """A request from ``sender`` whose Authentication-Results are ``results``, topmost first,
    as the receiving server adds its own above whatever the message came with."""
    headers = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    return (
        f"{headers}From: {sender}\r\nTo: unsubscribe@news.example.com\r\n"
        "Subject: unsubscribe\r\n\r\nPlease take me off.\r\n"
    ).encode()


def test_dmarc_pass_authenticates_the_from_address() -> None:
    raw = message("mx.news.example; spf=pass smtp.mailfrom=example.com; dmarc=pass (p=reject) "
                  "header.from=example.com")  # fmt: skip

    assert authenticated_from(raw, ANN, "")


def test_a_dkim_pass_by_the_from_domain_authenticates_it() -> None:
    raw = message("mx.news.example;\r\n dkim=pass (2048-bit key) header.d=example.com "
                  "header.s=s1 header.b=abcdef")  # fmt: skip

    assert authenticated_from(raw, ANN, "")


def test_a_dkim_pass_by_a_parent_domain_of_the_from_domain_authenticates_it() -> None:
    raw = message("mx.news.example; dkim=pass header.d=example.com")

    assert authenticated_from(raw, "ann@mail.example.com", "")


def test_a_dkim_pass_by_another_domain_does_not() -> None:
    raw = message("mx.news.example; dkim=pass header.d=mailer.example.net; dmarc=fail "
                  "header.from=example.com")  # fmt: skip

    assert not authenticated_from(raw, ANN, "")


def test_a_dkim_pass_by_a_domain_that_merely_ends_like_the_from_domain_does_not() -> None:
    raw = message("mx.news.example; dkim=pass header.d=ample.com")

    assert not authenticated_from(raw, ANN, "")


def test_spf_pass_alone_does_not() -> None:
    raw = message("mx.news.example; spf=pass smtp.mailfrom=ann@example.com")

    assert not authenticated_from(raw, ANN, "")


def test_a_dmarc_pass_for_another_from_domain_does_not() -> None:
    raw = message("mx.news.example; dmarc=pass header.from=evil.example")

    assert not authenticated_from(raw, ANN, "")


def test_a_forged_pass_below_our_servers_header_does_not() -> None:
    raw = message(
        "mx.news.example; dkim=none; spf=softfail smtp.mailfrom=example.com; dmarc=fail",
        "mx.news.example; dmarc=pass header.from=example.com",
    )

    assert not authenticated_from(raw, ANN, "")


def test_a_pass_inside_a_comment_does_not() -> None:
    raw = message("mx.news.example; dkim=fail (dkim=pass header.d=example.com) "
                  "header.d=example.com")  # fmt: skip

    assert not authenticated_from(raw, ANN, "")


def test_with_an_authserv_id_only_that_servers_header_counts() -> None:
    raw = message(
        "mx.news.example; dmarc=pass header.from=example.com",
        "mx.elsewhere.example; dmarc=fail header.from=example.com",
    )

    assert not authenticated_from(raw, ANN, "mx.elsewhere.example")


def test_with_an_authserv_id_that_servers_header_counts_below_others() -> None:
    # A relay we run added its own header above the one our inbound server wrote.
    raw = message(
        "relay.news.example; none",
        "MX.News.Example 1; dmarc=pass header.from=example.com",
    )

    assert authenticated_from(raw, ANN, "mx.news.example")


def test_without_the_authserv_ids_header_nothing_counts() -> None:
    raw = message("mx.forger.example; dmarc=pass header.from=example.com")

    assert not authenticated_from(raw, ANN, "mx.news.example")


def test_a_message_without_authentication_results_is_not_authenticated() -> None:
    assert not authenticated_from(message(), ANN, "")


def test_two_from_headers_are_not_authenticated() -> None:
    raw = message("mx.news.example; dmarc=pass header.from=example.com").replace(
        b"To:", b"From: mallory@evil.example\r\nTo:"
    )

    assert not authenticated_from(raw, ANN, "")


@pytest.mark.parametrize(
    "value",
    ["", ";;;", "dmarc=pass", "mx; dmarc=", "mx; =pass", 'mx; dkim="pass', "mx; (dmarc=pass",
     "mx; dkim=pass header.d", "mx; dmarc pass", "mx; dmarc==pass"],
)  # fmt: skip
def test_an_unreadable_header_is_not_authenticated(value: str) -> None:
    assert not authenticated_from(message(value), ANN, "")


def test_bytes_that_are_not_mail_are_not_authenticated() -> None:
    garbage = (
        b"\xff\xfe\x00 not mail\r\nFrom: ann@example.com\r\n"
        b"Authentication-Results: \xff\x80; dkim=\xffpass header.d=example.com\r\n\r\n\x00\xff"
    )

    assert not authenticated_from(garbage, ANN, "")


def test_a_from_address_without_a_domain_is_not_authenticated() -> None:
    raw = message("mx.news.example; dmarc=pass", sender="ann")

    assert not authenticated_from(raw, "ann", "")
