"""What the editor API's routers share: their settings, path and query types, the unit of
work that turns the domain's refusals into 404, 409 and 422 answers, and pagination."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from newsletter.db import session_scope
from newsletter.editions.service import EditionError, EditionNotFound
from newsletter.lists.schedule import ScheduleError
from newsletter.lists.service import ListError
from newsletter.models import (
    Editor,
)
from newsletter.subscriptions.addresses import InvalidAddress
from newsletter.web.api import Problem
from newsletter.web.auth import require_api_editor
from newsletter.web.context import web
from newsletter.web.editor_schemas import (
    NoNul,
)

ROUTER_SETTINGS: dict[str, Any] = {
    "prefix": "/api/v1",
    "tags": ["editor api"],
    "dependencies": [Depends(require_api_editor)],
    "responses": {
        401: {"model": Problem, "description": "No API token, or an unknown or revoked one."},
        422: {"model": Problem, "description": "The request is malformed; the detail says how."},
    },
}

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such edition."}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"model": Problem, "description": "The edition's state does not allow it."},
}
LIST_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such list."}
}

EditionId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The edition's ID.")]
Slug = Annotated[str, Path(max_length=64, description="The list's slug."), NoNul]
PageNumber = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=100)]
Search = Annotated[str, Query(max_length=200), NoNul]
ListSlug = Annotated[str, Query(alias="list", max_length=64, description="A list's slug."), NoNul]
ApiEditor = Annotated[Editor, Depends(require_api_editor)]

Row = TypeVar("Row")


@contextmanager
def unit_of_work(request: Request) -> Iterator[Session]:
    """One transaction for the request: committed on success, rolled back on a refusal."""
    try:
        with session_scope(web(request).settings.database_url) as session:
            yield session
    except EditionNotFound as error:
        raise HTTPException(404, str(error)) from None
    except EditionError as error:
        raise HTTPException(409, str(error)) from None
    except ListError as error:
        raise HTTPException(404, str(error)) from None
    except (ScheduleError, InvalidAddress) as error:
        raise HTTPException(422, str(error)) from None


def paginate(
    session: Session, query: Select[Row], page: int, per_page: int
) -> tuple[list[Row], int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total or 0
