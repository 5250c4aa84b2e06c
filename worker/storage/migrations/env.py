"""Alembic environment: runs on the connection that :func:`upgrade` hands over, never on its own."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from worker.errors import ConfigurationError
from worker.storage.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise ConfigurationError("run storage migrations with worker.storage.migrations.upgrade(url)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
