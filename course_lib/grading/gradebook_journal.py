"""The gradebook's rollback journal, kept as one file for a whole grading run so that every sandbox covers it.

SQLite copies the pages a write transaction changes to ``gradebook.db-journal`` first and, in its default
mode (``DELETE``), removes that file when the transaction ends. A sandbox hides the paths that exist when
it starts, so with ``course autograde --jobs 2`` the journal of one stream's merge was readable by the
submission the other stream was running: a submission that polled the path read 53,864 bytes of it
(other students' grade rows). Listing the file would not help on its own either: Linux detaches a mount
whose mount point is unlinked in another namespace, so a journal that is removed and created again is
no longer covered.

So, for a run, :func:`kept` creates the journal (an empty journal is no journal to SQLite) before any
sandbox starts, and every connection that writes the real gradebook uses ``journal_mode=TRUNCATE``:
SQLite then empties the file at commit instead of removing it, with the same crash safety (a journal with
content is rolled back on the next open; https://www.sqlite.org/pragma.html#pragma_journal_mode). That
covers the connections of this process (a SQLAlchemy ``connect`` listener: nbgrader's ``Gradebook``;
:func:`apply` for ``sqlite3`` ones) and of the real ``nbgrader generate_assignment`` the run starts
(``python -m course_lib.grading.gradebook_journal DB nbgrader ARGS``). One file, one inode, on every
sandbox's list of hidden paths, from the first sandbox to the last.

Other programs writing the gradebook during the run (the formgrader saving a manual grade) still use
their own mode; a ``DELETE``-mode commit removes the file, and the sandboxes started before no longer
cover the one created next (README, Trust model). A gradebook in WAL mode is left in it.
"""
from __future__ import annotations

import contextlib
import os
import runpy
import sqlite3
import sys
from pathlib import Path

__all__ = ["journal_path", "kept", "apply", "main"]

MODE = "truncate"
_KEPT: set[str] = set()  # real paths of the gradebooks whose journal is kept, in this process
_LISTENING = False


def journal_path(db) -> Path:
    """The rollback journal SQLite writes beside the database file ``db``."""
    return Path(f"{db}-journal")


def apply(conn: sqlite3.Connection) -> bool:
    """Switch ``conn`` to ``journal_mode=TRUNCATE`` if its main database is kept and in the default mode.

    Args:
        conn: a ``sqlite3`` connection outside a transaction (as SQLAlchemy's ``connect`` event gives it).
    Returns:
        Whether the connection now keeps the journal.
    """
    if not _KEPT:
        return False
    files = {name: path for _, name, path in conn.execute("PRAGMA database_list")}
    if not files.get("main") or os.path.realpath(files["main"]) not in _KEPT:
        return False
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
    if mode == "delete":  # a WAL, MEMORY or OFF gradebook is not ours to change
        mode = conn.execute(f"PRAGMA journal_mode={MODE}").fetchone()[0].lower()
    return mode in (MODE, "persist")


def _on_connect(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        apply(dbapi_connection)


def _listen() -> None:
    global _LISTENING
    if not _LISTENING:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "connect", _on_connect)
        _LISTENING = True


@contextlib.contextmanager
def kept(db):
    """Keep ``db``'s journal as one file while the block runs (``db`` None: a server gradebook, nothing to do).

    Creates the journal if it is missing, before the caller starts any sandbox that must cover it; the file
    stays afterwards (empty). Only this process's connections opened inside the block are switched.

    Args:
        db: the SQLite gradebook file, or None.
    Yields:
        The journal's path, or None.
    """
    if db is None:
        yield None
        return
    journal = journal_path(db)
    journal.touch(exist_ok=True)
    real = os.path.realpath(db)
    owned = real not in _KEPT
    _KEPT.add(real)
    _listen()
    try:
        yield journal
    finally:
        if owned:
            _KEPT.discard(real)


def main(argv: list[str] | None = None) -> None:
    """``python -m course_lib.grading.gradebook_journal DB MODULE ARGS...``: run ``python -m MODULE ARGS``
    (``nbgrader``) with the journal of gradebook ``DB`` kept, as in :func:`kept`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        sys.exit("usage: python -m course_lib.grading.gradebook_journal DB MODULE [ARGS...]")
    db, module = argv[0], argv[1]
    with kept(db):
        sys.argv = [module, *argv[2:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    from course_lib.grading.gradebook_journal import main as _main  # the one module whose _KEPT the listener reads

    _main()
