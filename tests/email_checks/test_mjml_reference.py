"""Our MJML, as mjml-python compiles it, passes the reference compiler (npm mjml 4) with
``validationLevel: "strict"``, and the HTML it becomes is in standards mode and free of
mjml-python's Rust escapes (issue 13)."""

from __future__ import annotations

import pytest

from newsletter.rendering.digest import render_digest
from tests.mjml_reference import mjml_compiled, require_reference_compiler, strict_errors
from tests.sent_messages import MESSAGES, NOTICES, SentMessage, body_parts, notice_templates
from tests.stress_edition import STRESS_CONTEXT, stress_stories

AS_WRITTEN = "stress digest as written"  # the stress stories straight into the digest, U+00A0 kept


@pytest.fixture(scope="module")
def documents(sent: dict[str, SentMessage]) -> dict[str, SentMessage]:
    """Each message's MJML and HTML, and the stress digest rendered from the stories as written
    (ingest folds U+00A0 into a space; a post edited later need not have passed it)."""
    with mjml_compiled() as sources:
        email, _ = render_digest(STRESS_CONTEXT, stress_stories(), budget_bytes=100_000)
    return sent | {AS_WRITTEN: SentMessage(AS_WRITTEN, b"", email.html, tuple(sources))}


@pytest.fixture(scope="module")
def errors(documents: dict[str, SentMessage]) -> dict[str, list[str]]:
    """The reference compiler's strict errors in each document's MJML, from one node run."""
    require_reference_compiler()
    pairs = [(name, source) for name, document in documents.items() for source in document.mjml]
    found: dict[str, list[str]] = {name: [] for name in documents}
    for (name, _), problems in zip(pairs, strict_errors([s for _, s in pairs]), strict=True):
        found[name] += problems
    return found


def test_every_notice_template_is_checked() -> None:
    assert notice_templates() == set(NOTICES)


@pytest.mark.parametrize("name", [*MESSAGES, AS_WRITTEN])
def test_the_reference_compiler_finds_no_error_in_strict_mode(
    name: str, errors: dict[str, list[str]]
) -> None:
    assert errors[name] == []


@pytest.mark.parametrize("name", [*MESSAGES, AS_WRITTEN])
def test_the_html_has_a_doctype_and_no_rust_escapes(
    name: str, documents: dict[str, SentMessage]
) -> None:
    document = documents[name]
    assert document.html.lstrip()[:15].lower() == "<!doctype html>"
    assert "\\u{" not in document.html
    if document.data:
        as_sent = body_parts(document.data)
        assert as_sent["text/html"].lstrip()[:15].lower() == "<!doctype html>"
        assert not [kind for kind, body in as_sent.items() if "\\u{" in body]
