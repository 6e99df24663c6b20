"""The TA pipeline on a course directory: release, autograde (trusted, sandboxed, parallel), feedback, grades.

``autograde`` grades each submission in four steps:

1. **nbgrader autograde in a scratch course.** The submission, the non-notebook files of the source
   assignment and a gradebook holding only this assignment are copied into a fresh temporary
   course directory; real ``nbgrader autograde`` runs there inside the sandbox (resource limits;
   where Linux allows, the real course's gradebook, submissions and solutions hidden, the course
   and Python installation read-only). Its kernel executes the student's code next to the tests
   and produces the notebook with outputs the student will see -- but its scores are not trusted.
2. **Trusted re-scoring.** :mod:`course_lib.grading.trusted` runs every autograded test cell of the
   *source* notebook (hidden tests included) with pytest in a process that runs no student code,
   calling the student's functions in a separate sandbox and comparing plain data. That process is
   a fresh fork of a warm trusted runner (:mod:`course_lib.grading.trusted_server`, one per grading
   thread), so the imports are paid once per run, not once per submission.
3. **Merge.** Under a lock, the trusted scores go into the real gradebook through nbgrader's
   Gradebook API (manual scores a TA has entered are never touched), test messages go into the
   answer cells' comments, and the feedback notebook (trusted verdicts in the test cells, hidden
   tests' source removed unless ``show_hidden_source``) is written to ``autograded/``.
4. **Done marker.** Written last; a re-run skips submissions whose marker matches the submission,
   so an interrupted run resumes and nothing is graded twice or lost.

Before grading, the SQLite gradebook is backed up (``gradebook.backups/``).
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from .check import jobs_root, run_trusted
from .config import load_config
from .offline_math import inline_mathjax
from .notebook import HIDDEN_BEGIN, HIDDEN_END, is_answer_cell, is_manual_cell, is_test_cell, meta, read
from .forkserver import ForkServerPool, run_nbgrader
from .gradebook_journal import journal_path, kept
from .gradebook_schema import alembic_head, recorded_version, stamp_new_sqlite
from .trusted_server import TrustedServerPool
from .sandbox import Limits, python_module, scrubbed_env
from ..validation import CourseError
from .submissions import (MARKER, add_status_column, missing_cells, notebook_problem, require_assignment,
                          require_students, status_column, student_id_problem)

__all__ = ["release", "autograde", "feedback", "export_grades", "format_grade_table", "course_paths",
           "backup_gradebook"]

_merge_lock = threading.Lock()
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]+$")


def _nbgrader(course: Path, *args, db_url: str | None = None, check: bool = True, timeout: float = 600,
              keep_journal: Path | None = None):
    """Run ``nbgrader ARGS`` on ``course`` (``keep_journal``: the gradebook whose journal a grading run keeps)."""
    # gradebook_journal runs nbgrader with that gradebook's writes emptying the journal instead of removing it
    run = ("nbgrader",) if keep_journal is None else ("course_lib.grading.gradebook_journal", keep_journal, "nbgrader")
    cmd = [*python_module(*run, *args), f"--CourseDirectory.root={course}"]
    if db_url:
        cmd.append(f"--CourseDirectory.db_url={db_url}")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(cmd, cwd=course, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}"
                           f"\n{proc.stderr[-4000:]}")
    return proc


def _db_url(course: Path, db_url: str | None) -> str:
    from .hub import configured_db_url  # a hub course keeps its PostgreSQL URL in .gradebook_url

    return db_url or configured_db_url(course) or "sqlite:///" + str(course / "gradebook.db")


def _course_id(course: Path) -> str:
    text = (course / "nbgrader_config.py").read_text()
    m = re.search(r"course_id\s*=\s*[\"']([^\"']+)", text)
    return m.group(1) if m else "default_course"


def release(course, assignment: str, db_url: str | None = None) -> Path:
    """``nbgrader generate_assignment``: solutions/HW -> assignments/HW, and record HW in the gradebook."""
    course = Path(course)
    require_assignment(course, assignment)
    _nbgrader(course, "generate_assignment", assignment, "--force", db_url=db_url)
    return course / "assignments" / assignment


def backup_gradebook(course: Path, db_url: str, keep: int = 20) -> Path | None:
    """Copy an SQLite gradebook to gradebook.backups/ with SQLite's online backup (other URLs: no-op)."""
    if not db_url.startswith("sqlite:///"):
        return None
    path = Path(db_url[len("sqlite:///"):])
    if not path.exists():
        return None
    folder = course / "gradebook.backups"
    folder.mkdir(exist_ok=True)
    dest = folder / f"gradebook-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.db"
    with contextlib.closing(sqlite3.connect(path)) as src, contextlib.closing(sqlite3.connect(dest)) as dst:
        src.backup(dst)
    for old in sorted(folder.glob("gradebook-*.db"))[:-keep]:
        old.unlink()
    return dest


@contextlib.contextmanager
def _course_lock(course: Path):
    with _merge_lock, open(course / ".course.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _submission_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _sqlite_path(db_url: str) -> Path | None:
    return Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") else None


def _sensitive_paths(course: Path, db_url: str) -> list[str]:
    """What every sandbox of this course hides: the folders with submissions, grades and solutions, the gradebook.

    Only paths that exist can be covered, and a sandbox covers what exists when it starts: ``autograde``
    creates the gradebook and its rollback journal before the first sandbox and keeps that journal one
    file for the whole run (:mod:`.gradebook_journal`), so this list -- also the warm servers' key -- is
    the same from the first submission to the last (before, the journal came and went with every merge:
    5 nbgrader fork servers started instead of 2 for 16 submissions with ``--jobs 2``, and a submission
    could read the journal of a merge under way).
    """
    paths = [course / d for d in ("submitted", "autograded", "feedback", "solutions", "gradebook.backups",
                                  "release", "source")]
    db = _sqlite_path(db_url)
    if db is not None:
        paths += [db, journal_path(db)]
    paths.append(Path(jobs_root()))  # the trusted runners' files (hidden tests' source) of every grading run
    return [str(p) for p in paths if p.exists()]


def _readonly_paths(course: Path) -> list[str]:
    pkg_root = Path(__file__).resolve().parents[2]  # the folder holding the course_lib package
    return sorted({str(course), sys.prefix, str(pkg_root)})


def _prepare_main_process(cell_timeout: float) -> None:
    """Import nbgrader's Gradebook API, then check the scratch configuration (one thread: nbgrader's imports race).

    Run in a background thread while the gradebooks are prepared: nbgrader's package import loads its whole
    app (about a second of CPU), and two threads importing nbgrader at once can see it half-initialized.

    Raises:
        CourseError: from :func:`_require_scratch_config`.
    """
    try:
        import nbgrader.api  # noqa: F401
    except Exception:  # noqa: BLE001 - the merge imports it again and reports the error there
        pass
    _require_scratch_config(cell_timeout)


def _template_gradebook(course: Path, assignment: str, tmp: Path, version: str | None = None) -> Path:
    """A gradebook holding only this assignment (made by nbgrader itself), copied into each scratch course.

    ``version`` is the real gradebook's schema revision (``recorded_version``, or ``alembic_head`` for a new
    one): the template starts with it, so nbgrader skips its ``alembic heads`` subprocess (2.3 s of CPU).
    """
    db = tmp / "template.db"
    stamp_new_sqlite(db, version)
    _nbgrader(course, "generate_assignment", assignment, "--force",
              f"--CourseDirectory.release_directory={tmp / 'release'}", db_url=f"sqlite:///{db}")
    return db


def _scratch_config(scratch: Path, course_id: str, cell_timeout: float) -> str:
    """nbgrader's configuration in a scratch course (one submission, its own gradebook).

    The kernel is shut down ``immediate`` (killed) rather than ``graceful`` once the notebook has run:
    nbclient has every output by then, the kernel is thrown away with its sandbox, and the graceful
    shutdown (the kernel's exit handlers, then jupyter_client polling every 0.1 s for its end) cost
    ~0.17 s per submission (plain ``nbgrader autograde`` of 10 hw00 submissions, 4 interleaved rounds:
    19.2 s against 17.5 s). nbgrader's ``Execute`` is :class:`~course_lib.grading.prompt_kernel.PromptExecute`:
    the same kernel and protocol without jupyter_client's fixed waits at its start and after its kill (0.3 s of
    ~0.55 s per kernel).
    """
    return (f"from course_lib.grading.prompt_kernel import autograde_preprocessors\n"
            f"c = get_config()\n"
            f"c.CourseDirectory.root = {str(scratch)!r}\n"
            f"c.CourseDirectory.course_id = {course_id!r}\n"
            f"c.CourseDirectory.source_directory = 'solutions'\n"
            f"c.CourseDirectory.db_url = 'sqlite:///{scratch / 'gradebook.db'}'\n"
            f"c.ExecutePreprocessor.timeout = {int(cell_timeout)}\n"
            f"c.Execute.timeout = {int(cell_timeout)}\n"
            f"c.Execute.shutdown_kernel = 'immediate'\n"
            f"c.Autograde.autograde_preprocessors = autograde_preprocessors()\n")


def _require_scratch_config(cell_timeout: float) -> None:
    """Load the scratch course's nbgrader configuration here, once per run, before any submission is graded.

    nbgrader (traitlets) logs a configuration file that raises and goes on without it, which would grade with
    stock settings (no cell timeout) instead of failing.

    Raises:
        CourseError: the configuration does not load, with the reason and what to try.
    """
    from traitlets.config.loader import PyFileConfigLoader

    with tempfile.TemporaryDirectory(prefix="course-config-") as tmp:
        (Path(tmp) / "nbgrader_config.py").write_text(_scratch_config(Path(tmp), "course", cell_timeout))
        try:
            PyFileConfigLoader("nbgrader_config.py", path=tmp).load_config()
        except Exception as err:  # noqa: BLE001 - whatever the file raised, say it in one line
            raise CourseError(f"the scratch nbgrader configuration does not load ({type(err).__name__}: {err}); "
                              "reinstall the course's pinned packages (make install) and retry") from None


def _feedback_notebook(autograded_nb, source_nb, cells: dict, show_hidden: bool):
    """Replace each test cell's source and output by the trusted verdict (hidden tests' code removed)."""
    src_tests = {meta(c)["grade_id"]: c for c in source_nb.cells if is_test_cell(c)}
    for cell in autograded_nb.cells:
        gid = meta(cell).get("grade_id")
        if gid not in src_tests:
            continue
        source = src_tests[gid].source
        if not show_hidden and HIDDEN_BEGIN in source:
            before, _, rest = source.partition(HIDDEN_BEGIN)
            after = rest.partition(HIDDEN_END)[2]
            res = cells.get(gid, {})
            n_hidden = sum(1 for t in res.get("tests", []) if t["hidden"])
            source = before + f"# ({n_hidden} hidden tests: their names and messages are shown below)" + after
        cell.source = source
        res = cells.get(gid)
        if res is None:
            text = "Not graded: the trusted grader produced no result for this cell.\n"
        else:
            lines = [f"Trusted grader: {res['points']:g} / {res['max_points']:g} points "
                     f"({'all tests passed' if res['passed'] else 'some tests failed'})"]
            if res.get("error"):
                lines.append(f"  ERROR while running the tests: {res['error'][:1500]}")
            for t in res.get("tests", []):
                kind = "hidden" if t["hidden"] else "visible"
                mark = "PASS" if t["passed"] else "FAIL"
                lines.append(f"  [{mark}] {t['name']} ({kind})")
                if not t["passed"]:
                    lines.extend("         " + l for l in t["message"].splitlines()[:12])
            text = "\n".join(lines) + "\n"
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return autograded_nb


def _first_line(message: str) -> str:
    lines = [l.strip() for l in (message or "").splitlines() if l.strip() and l.strip() != "AssertionError:"]
    return " ".join(lines[:2])[:240] or "failed"


def _merge(course: Path, db_url: str, assignment: str, student: str, sub_dir: Path,
           results: dict[str, dict], sources: dict[str, object]) -> tuple[float, float]:
    """Write trusted scores and messages into the real gradebook (manual scores are kept)."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import compute_checksum

    ts_file = sub_dir / "timestamp.txt"
    kwargs = {}
    if ts_file.exists():
        from nbgrader.utils import parse_utc

        kwargs["timestamp"] = parse_utc(ts_file.read_text().strip())
    total = max_total = 0.0
    with Gradebook(db_url, _course_id(course)) as gb:
        gb.update_or_create_student(student)
        with gb.db.no_autoflush:  # nbgrader builds the new submission's rows before adding it: flushing then warns
            gb.update_or_create_submission(assignment, student, **kwargs)
        for nb_name, src in sources.items():
            res = results.get(nb_name, {})
            cells = {c["grade_id"]: c for c in res.get("cells", [])}
            sub_path = sub_dir / f"{nb_name}.ipynb"
            submitted = read(sub_path) if sub_path.exists() and not notebook_problem(sub_dir, {nb_name: 0}) else None
            sub_cells = {meta(c).get("grade_id"): c for c in submitted.cells} if submitted else {}
            answer_for_test = {}
            pending = []
            for cell in src.cells:
                if is_answer_cell(cell) and not is_manual_cell(cell):
                    pending.append(meta(cell)["grade_id"])
                elif is_test_cell(cell):
                    answer_for_test[meta(cell)["grade_id"]] = list(pending)
                    pending = []
            for cell in src.cells:
                m = meta(cell)
                if not m.get("grade"):
                    continue
                gid = m["grade_id"]
                grade = gb.find_grade(gid, nb_name, assignment, student)
                if is_test_cell(cell):
                    r = cells.get(gid)
                    grade.auto_score = float(r["points"]) if r else 0.0
                    grade.needs_manual_grade = grade.manual_score is not None
                    failing = [t for t in (r or {}).get("tests", []) if not t["passed"]]
                    note = "; ".join(f"{t['name']}: {_first_line(t['message'])}"
                                     for t in failing) or ("" if r else "not graded (no trusted result)")
                    if r and r.get("error"):
                        note = f"error: {r['error'][:300]}; " + note
                    for answer in answer_for_test.get(gid, []):
                        comment = gb.find_comment(answer, nb_name, assignment, student)
                        comment.auto_comment = f"Trusted grader ({gid}): " + (note or "all tests passed")
                else:  # manually graded answer: nbgrader's rule (unchanged answer = no response = 0)
                    sc = sub_cells.get(gid)
                    unchanged = sc is None or ("checksum" in meta(sc) and meta(sc)["checksum"] == compute_checksum(sc))
                    grade.auto_score = 0.0 if unchanged else None
                    grade.needs_manual_grade = not unchanged or grade.manual_score is not None
                    if m.get("solution"):
                        comment = gb.find_comment(gid, nb_name, assignment, student)
                        comment.auto_comment = "No response." if unchanged else None
                score = grade.score
                total += float(score or 0.0)
                max_total += float(grade.max_score)
        gb.db.commit()
        from .late import apply_to_submission  # late penalty of grading.toml (stored apart from the grades)

        apply_to_submission(gb, load_config(course, assignment), assignment, student)
    return total, max_total


def _nbgrader_scores(scratch: Path, assignment: str, student: str, course_id: str) -> dict:
    """The scores nbgrader's own kernel run gave (untrusted: kept only to compare with the trusted ones)."""
    from nbgrader.api import Gradebook

    out: dict = {}
    try:
        with Gradebook(f"sqlite:///{scratch / 'gradebook.db'}", course_id) as gb:
            sub = gb.find_submission(assignment, student)
            for nb in sub.notebooks:
                out[nb.name] = {g.name: g.auto_score for g in nb.grades}
    except Exception as err:  # noqa: BLE001 - the kernel may have wrecked its scratch gradebook
        out["error"] = f"{type(err).__name__}: {err}"[:300]
    return out


def _grade_one(course: Path, assignment: str, student: str, cfg, db_url: str, template_db: Path,
               force: bool, forks=None, trusted_servers=None) -> dict:
    sub_dir = course / "submitted" / student / assignment
    out_dir = course / "autograded" / student / assignment
    digest = _submission_hash(sub_dir)
    marker = out_dir / MARKER
    if marker.exists() and not force:
        try:
            done = json.loads(marker.read_text())
        except (OSError, ValueError):
            done = {}
        if done.get("submission_sha256") == digest:
            return {"student": student, "status": "skipped", "score": done.get("score", 0),
                    "max_score": done.get("max_score", 0), "message": "already graded (use --force to regrade)"
                    + (f"; {done['status']}" if done.get("status", "graded") != "graded" else "")}
    src_dir = course / "solutions" / assignment
    sources = {p.stem: read(p) for p in sorted(src_dir.glob("*.ipynb"))}
    problem = notebook_problem(sub_dir, sources)
    if problem:  # recorded with 0 points and its reason; nothing of it can run
        with _course_lock(course):
            score, max_score = _merge(course, db_url, assignment, student, sub_dir, {}, sources)
            out_dir.mkdir(parents=True, exist_ok=True)
            status = "failed: " + problem.split(" (")[0]
            marker.write_text(json.dumps({"submission_sha256": digest, "score": score, "max_score": max_score,
                                          "status": status, "graded_at": datetime.now(timezone.utc).isoformat()}))
        return {"student": student, "status": "failed", "score": score, "max_score": max_score, "message": problem}
    missing = missing_cells(sub_dir, sources)
    scratch = Path(tempfile.mkdtemp(prefix=f"course-grade-{student}-"))
    message = f"cells missing: {', '.join(missing)} (graded with the source's tests); " if missing else ""
    try:
        (scratch / "nbgrader_config.py").write_text(_scratch_config(scratch, _course_id(course), cfg.cell_timeout_s))
        shutil.copytree(src_dir, scratch / "solutions" / assignment, ignore=shutil.ignore_patterns("*.ipynb"))
        shutil.copytree(sub_dir, scratch / "submitted" / student / assignment)
        shutil.copy(template_db, scratch / "gradebook.db")
        home = scratch / "home"
        home.mkdir()
        wall = cfg.cell_timeout_s * (4 + sum(1 for nb in sources.values() for c in nb.cells if c.cell_type == "code"))
        limits = Limits(memory_mb=cfg.memory_mb, cpu_s=int(wall) + 60)
        message += run_nbgrader(["autograde", assignment, "--student", student, "--force"], scratch,
                                scrubbed_env(str(home)), scratch / "nbgrader.log", limits, wall,
                                hide=_sensitive_paths(course, db_url), readonly=_readonly_paths(course), forks=forks)
        untrusted = _nbgrader_scores(scratch, assignment, student, _course_id(course))
        # trusted re-scoring of every notebook (reads the original submission, never the scratch copy)
        results = {}
        for nb_name, src in sources.items():
            sub_nb = sub_dir / f"{nb_name}.ipynb"
            if not sub_nb.exists():
                continue
            res = run_trusted(str(src_dir / f"{nb_name}.ipynb"), {student: str(sub_nb)}, cfg,
                              timeout=cfg.load_timeout_s + 60 + 4 * cfg.timeout_s * 10,
                              hide=_sensitive_paths(course, db_url), readonly=_readonly_paths(course),
                              servers=trusted_servers)
            results[nb_name] = res.get(student, {"error": "no result"})
            results[nb_name]["nbgrader_kernel_scores"] = untrusted.get(nb_name, {})
            if results[nb_name].get("load_failure"):
                message += f"{nb_name}: {results[nb_name]['load_failure'][:200]} "
        with _course_lock(course):
            score, max_score = _merge(course, db_url, assignment, student, sub_dir, results, sources)
            tmp_out = out_dir.with_name(out_dir.name + ".partial")
            shutil.rmtree(tmp_out, ignore_errors=True)
            graded_dir = scratch / "autograded" / student / assignment
            if graded_dir.is_dir():
                shutil.copytree(graded_dir, tmp_out, symlinks=False,
                                ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])
            else:
                shutil.copytree(sub_dir, tmp_out)
                message += "nbgrader could not execute the notebook (outputs missing); "
            for nb_name, src in sources.items():
                path = tmp_out / f"{nb_name}.ipynb"
                if not path.exists():
                    continue
                try:
                    nb = read(path)
                except Exception:  # noqa: BLE001 - a kernel may have left a broken file
                    nb = read(sub_dir / f"{nb_name}.ipynb")
                cells = {c["grade_id"]: c for c in results.get(nb_name, {}).get("cells", [])}
                path.chmod(0o644)  # nbgrader leaves autograded notebooks read-only; only root could overwrite them
                nbformat.write(_feedback_notebook(nb, src, cells, cfg.show_hidden_source), str(path))
            (tmp_out / "trusted_results.json").write_text(json.dumps(results, indent=1))
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_out, out_dir)
            info = {"submission_sha256": digest, "score": score, "max_score": max_score,
                    "status": "graded" + (f"; cells missing: {', '.join(missing)}" if missing else ""),
                    "graded_at": datetime.now(timezone.utc).isoformat()}
            (out_dir / (MARKER + ".tmp")).write_text(json.dumps(info))
            os.replace(out_dir / (MARKER + ".tmp"), marker)
        return {"student": student, "status": "graded", "score": score, "max_score": max_score,
                "message": message.strip()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def autograde(course, assignment: str, students=None, jobs: int = 1, force: bool = False,
              db_url: str | None = None, progress=None) -> list[dict]:
    """Grade submitted/<student>/<assignment> for every (or the given) student; see the module docstring.

    A folder whose name is not a valid student id is skipped with a message; a corrupt notebook is
    recorded as failed with 0 points; neither stops the other submissions.

    Args:
        progress: optional callable, called with each student's dict as soon as that student is done.
    Returns:
        One dict per student: student, status ("graded", "skipped", "failed", "error"), score, max_score, message.
    """
    course = Path(course).resolve()
    require_assignment(course, assignment)
    db_url = _db_url(course, db_url)
    cfg = load_config(course, assignment)
    sub_root = course / "submitted"
    found = sorted(p.parent.name for p in sub_root.glob(f"*/{assignment}") if p.is_dir()) if sub_root.exists() else []
    if students:
        require_students(list(students), found, f"submitted/<student>/{assignment}")
    named = list(students) if students else found
    invalid = [{"student": s, "status": "skipped", "score": 0, "max_score": 0, "message": student_id_problem(s)}
               for s in named if student_id_problem(s)]
    students = [s for s in named if not student_id_problem(s)]
    for s in invalid:
        if progress:
            progress(s)
    if not students:
        if not invalid:
            print(f"course: nothing to grade: no folder submitted/*/{assignment}")
        return invalid
    backup_gradebook(course, db_url)
    # these exist from the start, so every sandbox hides the same paths all along (the warm servers' key): a new
    # course's gradebook would otherwise appear during the run (an empty file is an empty SQLite database), and
    # the gradebook's journal is created now and kept one file until the end (kept: the sandboxes cover it)
    (course / "autograded").mkdir(exist_ok=True)
    db = _sqlite_path(db_url)
    if db is not None:
        db.touch(exist_ok=True)
    streams = min(max(1, int(jobs)), len(students))
    forks, trusted = ForkServerPool(), TrustedServerPool()
    with kept(db), forks, trusted:  # every server is stopped at the end, whatever happens
        # the warm servers import nbgrader / pytest while the gradebooks are prepared (their processes start now)
        forks.warm(streams, _sensitive_paths(course, db_url), _readonly_paths(course))
        trusted.warm(streams)
        # make sure the gradebook knows the assignment and its cells (nbgrader records them on release)
        version = recorded_version(db_url)  # read before the real gradebook is touched again (None: a new one)
        if version is None:  # a new gradebook: stamped as nbgrader would stamp it, without its subprocess
            version = alembic_head()
            if db is not None:
                stamp_new_sqlite(db, version)
        prepared = ThreadPoolExecutor(max_workers=1)  # after SQLAlchemy's import above: one importer at a time
        ready = prepared.submit(_prepare_main_process, cfg.cell_timeout_s)
        prepared.shutdown(wait=False)
        with tempfile.TemporaryDirectory(prefix="course-template-") as tmp:
            with ThreadPoolExecutor(max_workers=2) as both:  # two independent nbgrader runs, side by side
                real = both.submit(_nbgrader, course, "generate_assignment", assignment, "--force",
                                   f"--CourseDirectory.release_directory={Path(tmp) / 'release-real'}", db_url=db_url,
                                   keep_journal=db)
                template = _template_gradebook(course, assignment, Path(tmp), version)
                real.result()
            ready.result()  # the scratch configuration loads (else CourseError: nothing is graded)

            def run(student):
                try:
                    return _grade_one(course, assignment, student, cfg, db_url, template, force, forks, trusted)
                except Exception as err:  # noqa: BLE001 - one bad submission must not stop the others
                    return {"student": student, "status": "error", "score": 0, "max_score": 0,
                            "message": f"{type(err).__name__}: {err}"[:500]}

            with ThreadPoolExecutor(max_workers=streams) as pool:
                futures = [pool.submit(run, s) for s in students]
                for f in as_completed(futures):
                    if progress:
                        progress(f.result())
                return invalid + [f.result() for f in futures]


def feedback(course, assignment: str, students=None, db_url: str | None = None) -> list[Path]:
    """``nbgrader generate_feedback``: HTML from the autograded notebooks (trusted verdicts, no hidden source)."""
    course = Path(course).resolve()
    require_assignment(course, assignment)
    graded = sorted(p.parent.parent.name for p in (course / "autograded").glob(f"*/{assignment}/*.ipynb"))
    if students:
        require_students(list(students), sorted(set(graded)), f"autograded/<student>/{assignment}",
                         f"Run `course autograde {assignment}` first, or check the name.")
    if not graded:
        raise CourseError(f"nothing to give feedback on: no autograded notebook in autograded/*/{assignment}; "
                          f"run `course autograde {assignment}` first.")
    args = ["generate_feedback", assignment, "--force"]
    for s in students or []:
        args += ["--student", s]
    _nbgrader(course, *args, db_url=_db_url(course, db_url))
    paths = sorted((course / "feedback").glob(f"*/{assignment}/*.html"))
    for path in paths:  # maths renders offline: MathJax inlined instead of loaded from a CDN
        path.write_text(inline_mathjax(path.read_text(encoding="utf-8")), encoding="utf-8")
    return paths


def export_grades(course, output: str = "grades.csv", db_url: str | None = None) -> tuple[list[dict], Path]:
    """``nbgrader export`` to CSV (one row per student and assignment); returns (rows, path)."""
    course = Path(course).resolve()
    path = Path(output) if Path(output).is_absolute() else course / output
    _nbgrader(course, "export", f"--to={path}", db_url=_db_url(course, db_url))
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return add_status_column(course, rows, path), path


def format_grade_table(rows: list[dict]) -> str:
    """A plain-text grade table: student x assignment, 'score / max'."""
    if not rows:
        return "(no grades yet)"
    students = sorted({r["student_id"] for r in rows})
    hws = sorted({r["assignment"] for r in rows})
    cell = {(r["student_id"], r["assignment"]): f"{float(r['score']):g} / {float(r['max_score']):g}"
            + (f" (late -{float(r['late_submission_penalty']):g})" if float(r.get("late_submission_penalty") or 0) else "")
            for r in rows}
    w = max(12, *(len(h) for h in hws))
    lines = [f"{'student':<16}" + "".join(f"{h:>{w + 2}}" for h in hws)]
    lines[0] += "  status"
    for s in students:
        lines.append(f"{s:<16}" + "".join(f"{cell.get((s, h), '-'):>{w + 2}}" for h in hws)
                     + "  " + status_column([r for r in rows if r["student_id"] == s]))
    return "\n".join(lines)


def course_paths(course) -> dict[str, Path]:
    """Where the pipeline writes things in a course directory."""
    course = Path(course)
    return {"release": course / "assignments", "submitted": course / "submitted", "autograded": course / "autograded",
            "feedback": course / "feedback", "gradebook": course / "gradebook.db", "grades": course / "grades.csv",
            "backups": course / "gradebook.backups"}
