"""The reference MJML compiler (npm ``mjml`` 4) checking our MJML with ``validationLevel:
"strict"``: the compiler mjml-python follows, and the one MJML's documentation describes.

.ci/run installs it from the npm registry into ``.ci/node_modules`` (``npm ci --prefix .ci``,
pinned by .ci/package-lock.json). Without node or the package the checks skip, unless
``NEWSLETTER_REQUIRE_MJML`` is set (as .ci/run sets it): then they fail.

:func:`mjml_compiled` records the MJML sources mjml-python compiles, exactly as it gets them;
:func:`strict_errors` validates any number of them in one node process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from newsletter.rendering import render
from tests.required_tools import require_tool

NODE_MODULES = Path(__file__).resolve().parent.parent / ".ci" / "node_modules"
VALIDATOR = Path(__file__).with_suffix(".js")
INSTALL = "npm ci --prefix .ci  (the reference compiler, npm mjml 4)"


def missing() -> str | None:
    """Why the reference compiler cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_MODULES / "mjml" / "package.json").exists():
        return f"npm mjml is not installed in {NODE_MODULES}: {INSTALL}"
    return None


def require_reference_compiler() -> None:
    """Skip the calling test without the compiler; fail instead under .ci/run."""
    require_tool(missing(), variable="NEWSLETTER_REQUIRE_MJML")


def strict_errors(sources: Sequence[str], *, timeout: float = 120) -> list[list[str]]:
    """The strict validation errors of each MJML document ([] for a valid one)."""
    node = shutil.which("node")
    assert node is not None, missing()
    done = subprocess.run(
        [node, str(VALIDATOR), str(NODE_MODULES)],
        input=json.dumps(list(sources)), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, f"the reference compiler failed: {done.stderr}"
    results: list[list[str]] = json.loads(done.stdout)
    assert len(results) == len(sources)
    return results


@contextmanager
def mjml_compiled() -> Iterator[list[str]]:
    """Inside: every MJML source handed to mjml-python is appended to the yielded list, as it
    was handed over (after the Jinja render and whatever rendering does at the boundary)."""
    original = render.mjml2html
    sources: list[str] = []

    def recording(source: str, *args: Any, **kwargs: Any) -> Any:
        sources.append(source)
        return original(source, *args, **kwargs)

    render.mjml2html = recording  # type: ignore[assignment]
    try:
        yield sources
    finally:
        render.mjml2html = original  # type: ignore[assignment]
    assert sources, "nothing reached mjml2html: has rendering stopped calling it?"
