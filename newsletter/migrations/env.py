"""Alembic environment: the URL comes from the settings, never from an ini file."""

from __future__ import annotations

from alembic import context

import newsletter.models  # noqa: F401  (registers every table on Base.metadata)
from newsletter.db import Base, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "newsletter.migrate sets sqlalchemy.url"

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = make_engine(url)
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # SQLite alters a table by copying it and dropping the original; with foreign
                # keys on, that drop would cascade into every child table's rows.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()  # the pragma is a no-op inside a transaction
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                assert not broken, f"migration left dangling foreign keys: {broken[:5]}"
        engine.dispose()
