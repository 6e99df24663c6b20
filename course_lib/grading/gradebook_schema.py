"""The gradebook's schema revision (alembic): read it, find nbgrader's head, stamp a new file -- without a subprocess.

nbgrader records the schema of a new gradebook in an ``alembic_version`` table (one row, the head
revision of its migration scripts), which it finds by running ``alembic heads``: a subprocess that
imports alembic, SQLAlchemy and every migration script for that one string (2.3 s of CPU). A new
course pays that twice in its first ``course autograde`` (the gradebook and the template gradebook)
and once more for every new gradebook. Here the head is read from the scripts' ``revision`` /
``down_revision`` lines instead (0.5 ms), and a new file is stamped exactly as nbgrader stamps it, so
nbgrader sees a gradebook with tables and skips the subprocess. ``tests/test_gradebook_schema.py``
checks the head against ``alembic heads`` itself and the stamped file against one nbgrader made alone.
"""
from __future__ import annotations

import contextlib
import importlib.util
import re
import sqlite3
from pathlib import Path

from .gradebook_journal import apply

__all__ = ["alembic_head", "recorded_version", "stamp_new_sqlite", "write_version"]

_REVISION = re.compile(r"^revision\s*=\s*['\"]([0-9a-f]+)['\"]", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.*)$", re.M)
_VERSION = re.compile(r"[0-9a-f]{6,32}")


def alembic_head() -> str | None:
    """The revision nbgrader stamps on a new gradebook (its migration scripts' head), or None.

    The head is the one ``revision`` that no script names as its ``down_revision``.

    Returns:
        That revision; None where there is no single one (no scripts found, or a branched history),
        in which case nbgrader's own ``alembic heads`` is left to decide.
    """
    spec = importlib.util.find_spec("nbgrader")
    if spec is None or not spec.submodule_search_locations:
        return None
    revisions, parents = set(), set()
    for location in spec.submodule_search_locations:
        for script in (Path(location) / "alembic" / "versions").glob("*.py"):
            text = script.read_text(encoding="utf-8", errors="replace")
            revisions.update(_REVISION.findall(text))
            for down in _DOWN_REVISION.findall(text):
                parents.update(re.findall(r"['\"]([0-9a-f]+)['\"]", down))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def recorded_version(db_url: str) -> str | None:
    """The revision recorded in an existing gradebook (any SQLAlchemy URL), or None (none, or no gradebook)."""
    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).is_file():
        return None  # SQLAlchemy would create an empty file
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - no gradebook yet, or an older one: nbgrader works it out itself
        return None
    return version if isinstance(version, str) and _VERSION.fullmatch(version) else None


def write_version(conn: sqlite3.Connection, version: str) -> None:
    """Create nbgrader's ``alembic_version`` table holding ``version`` (the caller commits)."""
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (version,))


def stamp_new_sqlite(db, version: str | None) -> bool:
    """Stamp ``version`` on a SQLite gradebook that has no tables yet (a missing or empty file).

    nbgrader stamps a gradebook only when it has no tables, and then creates the others itself; a file
    that already has tables is left as it is.

    Args:
        db: the gradebook file.
        version: the revision (:func:`alembic_head` or :func:`recorded_version`); None stamps nothing.
    Returns:
        Whether the file was stamped.
    """
    if not version:
        return False
    with contextlib.closing(sqlite3.connect(db)) as conn:
        apply(conn)  # inside a grading run: the journal stays one file (gradebook_journal)
        if conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
            return False
        write_version(conn, version)
        conn.commit()
    return True
