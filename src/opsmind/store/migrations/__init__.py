"""Alembic migrations of the opsmind store (run them with :func:`opsmind.store.migrate`)."""
