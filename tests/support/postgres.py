"""The PostgreSQL server of the tests: 127.0.0.1:5432 (trust auth, user postgres, database test; ``CIVIC_TEST_PG``
overrides it). A throwaway "database" is a uniquely named schema of that database (much faster to create and drop
than a database), reached through a URL whose ``search_path`` is that schema only."""

from __future__ import annotations

import os

import psycopg

PG_SERVER = os.environ.get("CIVIC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def admin() -> psycopg.Connection:
    return psycopg.connect(PG_SERVER, autocommit=True)


def schema_url(name: str) -> str:
    """The SQLAlchemy URL of the schema `name`, seeing only it."""
    return f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://', 1)}?options=-csearch_path%3D{name}"
