"""Email addresses as readers type them."""

from __future__ import annotations

import pytest

from newsletter.subscriptions.addresses import InvalidAddress, normalise_address


def test_domain_is_lower_cased() -> None:
    assert normalise_address("ann@Example.COM") == "ann@example.com"


def test_local_part_keeps_its_case() -> None:
    assert normalise_address("Ann.Smith@example.com") == "Ann.Smith@example.com"


def test_surrounding_spaces_are_dropped() -> None:
    assert normalise_address("  ann@example.com \t") == "ann@example.com"


def test_internationalised_domain_is_accepted() -> None:
    assert normalise_address("leser@Bücher.example") == "leser@bücher.example"


def test_punycode_domain_is_stored_in_unicode() -> None:
    assert normalise_address("leser@xn--bcher-kva.example") == "leser@bücher.example"


def test_internationalised_local_part_is_accepted() -> None:
    assert normalise_address("josé@example.com") == "josé@example.com"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@@example.com",
        "ann smith@example.com",
        "ann@example",
        "ann@localhost",
        "ann@exa mple.com",
        "ann@example..com",
        ".ann@example.com",
        "ann@example.invalid",
        "Ann <ann@example.com>",
    ],
)
def test_invalid_address_is_refused_with_the_reason(value: str) -> None:
    with pytest.raises(InvalidAddress, match="is not a valid email address"):
        normalise_address(value)


def test_error_quotes_the_address_typed() -> None:
    with pytest.raises(InvalidAddress, match=r"'ann-at-example\.com'"):
        normalise_address("ann-at-example.com")


@pytest.mark.parametrize(
    "value",
    [
        "ann@example.com\r\nBcc: everyone@example.com",
        "ann@example.com\n",
        "ann@example.com\r",
        "ann\n@example.com",
        "ann@example.com\x00",
    ],
)
def test_line_breaks_are_refused(value: str) -> None:
    with pytest.raises(InvalidAddress, match="line breaks"):
        normalise_address(value)


def test_invalid_address_is_a_value_error() -> None:
    assert issubclass(InvalidAddress, ValueError)
