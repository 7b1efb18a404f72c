"""Finding posts, for the admin pages and the editor API alike."""

from __future__ import annotations

from sqlalchemy import Select, select

from newsletter.models import Post


def posts_matching(q: str) -> Select[Post]:
    """Posts whose title contains ``q`` (any case; % and _ are plain characters), newest first."""
    query = select(Post).order_by(Post.published_at.desc(), Post.id.desc())
    if q.strip():
        query = query.where(Post.title.icontains(q.strip(), autoescape=True))
    return query
