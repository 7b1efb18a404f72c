from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Column, Table
from sqlalchemy import select

from newsletter.cli.common import console, print_json, utcnow, when
from newsletter.db import session_scope
from newsletter.editors.service import (
    MIN_PASSWORD,
    create_editor,
    create_token,
    deactivate_editor,
    find_editor,
    revoke_token,
    set_password,
)
from newsletter.models import ApiToken, Editor

app = typer.Typer(help="Editor accounts and API tokens.", no_args_is_help=True)

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(
        typer.prompt(f"Password (at least {MIN_PASSWORD} characters)", hide_input=True,
                     confirmation_prompt=True)
    )  # fmt: skip


@app.command()
def create(
    email: Annotated[str, typer.Argument(help="The editor's email address: their login.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an editor who can sign in at /admin."""
    password = _password(password_stdin)
    with session_scope() as session:
        editor = create_editor(session, email, password, name=name)
        console.print(f"Editor {editor.email} created: sign in at /admin/login.")


@app.command()
def password(email: str, password_stdin: PasswordStdin = False) -> None:
    """Set an editor's password; signs them out of every browser."""
    new = _password(password_stdin)
    with session_scope() as session:
        set_password(session, find_editor(session, email), new, now=utcnow())
    console.print(f"Password of {email} changed.")


@app.command("list")
def list_editors(
    format: Annotated[str, typer.Option(help="table or json")] = "table",
) -> None:
    """Editors and their API tokens (prefixes only)."""
    with session_scope() as session:
        rows: list[dict[str, Any]] = [
            {"email": e.email, "name": e.name, "active": e.is_active,
             "last_login_at": e.last_login_at,
             "tokens": [{"id": t.id, "name": t.name, "prefix": t.prefix,
                         "revoked": t.revoked_at is not None} for t in e.tokens]}
            for e in session.scalars(select(Editor).order_by(Editor.email))
        ]  # fmt: skip
    if format == "json":
        print_json(rows)
        return
    table = Table("email", "name", "active", Column("last login", no_wrap=True), "API tokens")
    for row in rows:
        tokens = ", ".join(
            f"{t['id']}:{t['name']} ({t['prefix']}…{', revoked' if t['revoked'] else ''})"
            for t in row["tokens"]
        )
        table.add_row(row["email"], row["name"], "yes" if row["active"] else "no",
                      when(row["last_login_at"]), tokens)  # fmt: skip
    console.print(table)


@app.command()
def token(
    email: Annotated[str, typer.Argument(help="The editor the token acts for.")],
    name: Annotated[str, typer.Option(help="What uses it, e.g. cms.")] = "cms",
) -> None:
    """Create an API token; it is shown once, only its hash is kept."""
    with session_scope() as session:
        issued = create_token(session, find_editor(session, email), name)
    console.print("Token created. Copy it now, it will not be shown again:")
    print(issued.secret)


@app.command("revoke-token")
def revoke(token_id: Annotated[int, typer.Argument(help="The token's ID (editors list).")]) -> None:
    """Revoke an API token at once."""
    with session_scope() as session:
        revoked: ApiToken = revoke_token(session, token_id, now=utcnow())
        console.print(f"Token {revoked.id} ({revoked.name}) revoked.")


@app.command()
def deactivate(
    email: Annotated[str, typer.Argument(help="The editor to lock out.")],
) -> None:
    """Deactivate an editor: no more sign-in, every session ended, every API token revoked."""
    with session_scope() as session:
        done = deactivate_editor(session, find_editor(session, email), now=utcnow())
        console.print(
            f"Editor {done.editor.email} deactivated: {done.sessions_ended} session(s) "
            f"ended, {done.tokens_revoked} API token(s) revoked."
        )
