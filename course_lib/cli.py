"""The ``course`` command: what a TA runs to release, autograde, return feedback and export grades.

Every command works on the course directory it is run in (the folder holding
``nbgrader_config.py`` with ``solutions/``, ``assignments/`` and ``submitted/<student>/<HW>/``)
or on the one ``--course-dir`` names. Commands drive real nbgrader.

    course release HW           generate the student version of HW into assignments/
    course autograde HW         grade submitted/*/HW (trusted re-scoring, sandboxed, --jobs N)
    course feedback HW          write HTML feedback into feedback/<student>/HW/
    course grades               export the gradebook to grades.csv
    course check HW             reference passes + mutation score of the hidden tests
    course demo                 the whole pipeline on examples/submissions in a fresh directory
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_support import positive_int

__all__ = ["main", "find_course_dir"]


def find_course_dir(start: str | None = None) -> Path:
    """The course directory: ``start`` if given, else the nearest folder up from cwd with nbgrader_config.py."""
    if start:
        path = Path(start).resolve()
        if not (path / "nbgrader_config.py").exists():
            raise SystemExit(f"course: {path} has no nbgrader_config.py; pass the course directory with --course-dir.")
        return path
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").exists():
            return folder
    raise SystemExit("course: no nbgrader_config.py here or in a parent folder. Run inside the course directory "
                     "or pass --course-dir PATH.")


def _cmd_release(args) -> int:
    from .grading.pipeline import release

    course = find_course_dir(args.course_dir)
    for hw in args.assignment:
        path = release(course, hw)
        print(f"released {hw} -> {path}")
        if not args.no_publish:
            from .grading.exchange import publish

            print(f"published {hw} -> {publish(course, hw)} (students fetch it from the Assignment List)")
    return 0


def _cmd_autograde(args) -> int:
    from .grading.pipeline import autograde

    from .cli_support import autograde_exit_code, autograde_progress, count_submissions, print_autograde_table

    course = find_course_dir(args.course_dir)
    bar, on_done = autograde_progress(args.assignment, count_submissions(course, args.assignment, args.student))
    with bar:
        summary = autograde(course, args.assignment, students=args.student or None, jobs=args.jobs, force=args.force,
                            db_url=args.db_url, progress=on_done)
    print_autograde_table(summary)
    return autograde_exit_code(summary)


def _cmd_feedback(args) -> int:
    from .grading.pipeline import feedback

    course = find_course_dir(args.course_dir)
    paths = feedback(course, args.assignment, students=args.student or None, db_url=args.db_url)
    for p in paths:
        print(f"feedback: {p}")
    if args.release:
        from .grading.exchange import release_feedback

        print(f"released {len(release_feedback(course, args.assignment))} feedback file(s) to the exchange")
    return 0


def _cmd_grades(args) -> int:
    from .grading.pipeline import export_grades, format_grade_table

    course = find_course_dir(args.course_dir)
    from .grading.late import apply_late_penalties

    apply_late_penalties(course, db_url=args.db_url)  # penalties follow manual grading done since autograde
    rows, path = export_grades(course, args.output, db_url=args.db_url)
    print(format_grade_table(rows))
    print(f"\ngrades written to {path}")
    if args.format:
        from .grading.lms import write_grade_csv

        print(f"{args.format} grade-centre CSV: {write_grade_csv(course, rows, args.format, roster=args.students)}")
    return 0


def _cmd_check(args) -> int:
    from .grading.check import check_assignment, format_report

    from .cli_support import check_progress
    from .grading.submissions import require_assignment

    course = find_course_dir(args.course_dir)
    require_assignment(course, args.assignment)
    progress = check_progress(args.assignment)
    try:
        report = check_assignment(course, args.assignment, jobs=args.jobs, progress=progress)
    finally:
        progress.close()
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def _cmd_demo(args) -> int:
    from .grading.demo import run_demo

    return run_demo(args.dir, repo=args.course_dir, jobs=args.jobs, db_url=args.db_url)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run `course COMMAND --help` for the options of a command.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--course-dir", help="course directory (default: the one holding nbgrader_config.py "
                                            "here or above)")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show Python tracebacks instead of one-line errors")
        p.set_defaults(func=func)
        return p

    def db(p):
        p.add_argument("--db-url", help="gradebook SQLAlchemy URL (default: sqlite gradebook.db in the course "
                                        "directory, as nbgrader_config.py says)")

    p = add("release", _cmd_release, "Generate the student version of assignments (nbgrader generate_assignment).")
    p.add_argument("assignment", nargs="+", help="assignment name(s), e.g. hw00_preliminaries")
    p.add_argument("--no-publish", action="store_true", help="do not publish to the exchange (release_assignment)")
    p = add("autograde", _cmd_autograde, "Autograde submitted/<student>/HW with nbgrader, then re-score every "
                                         "autograded cell with the trusted, sandboxed runner.")
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--jobs", type=positive_int, default=1, help="grade N submissions in parallel (default 1)")
    p.add_argument("--force", action="store_true", help="re-grade submissions already graded")
    db(p)
    p = add("feedback", _cmd_feedback, "Generate HTML feedback (trusted verdicts; hidden tests' source not shown).")
    p.add_argument("assignment")
    p.add_argument("--release", action="store_true", help="also return it to students (nbgrader release_feedback)")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    db(p)
    p = add("grades", _cmd_grades, "Export all grades to a CSV file and print the grade table.")
    p.add_argument("--output", default="grades.csv", help="CSV path (default grades.csv in the course directory)")
    p.add_argument("--format", choices=["blackboard", "canvas", "moodle"], help="also write grades-<format>.csv "
                                                                                "for the LMS's grade import")
    p.add_argument("--students", help="roster CSV (names, LMS ids) for --format")
    db(p)
    p = add("check", _cmd_check, "Check an assignment: the reference solution passes, and the hidden tests catch "
                                 "mutants of it (>= the min_mutation_score of grading.toml).")
    p.add_argument("assignment")
    p.add_argument("--jobs", type=positive_int, default=2, help="parallel trusted runners (default 2)")
    p.add_argument("--json", help="also write the report as JSON to this path")
    p = add("demo", _cmd_demo, "Run the whole pipeline (release, autograde, feedback, grades) on "
                               "examples/submissions in a fresh course working directory.")
    p.add_argument("--dir", default=None, help="where to create the demo course (default: ./demo_course, replaced)")
    p.add_argument("--jobs", type=positive_int, default=2, help="parallel autograding jobs (default 2)")
    db(p)
    from .experiments.cli import add_parser as add_experiment

    add_experiment(sub)  # course experiment run|report (Phase II studies)
    from .projects import add_parser as add_project

    add_project(sub)  # course project list|new|review (Phase II kits, team repositories, journal club)
    from .grading import exchange_cli as exchange

    p = add("collect", exchange.cli_collect, "Collect submissions into submitted/ (nbgrader collect from the "
                                             "exchange, or zip_collect from an LMS archive with --zip).")
    exchange.add_collect_arguments(p)
    exchange.add_lab_arguments(add("lab", exchange.cli_lab, "Start JupyterLab on the course (exchange ready)."))
    from .grading import hub

    hub.add_hub_arguments(add("hub", hub.cli_hub, "Start a JupyterHub for the class (accounts from a roster, "
                                                  "PostgreSQL gradebook, formgrader per course); as root."))
    return parser


def main(argv=None) -> int:
    from .cli_support import run_command

    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
