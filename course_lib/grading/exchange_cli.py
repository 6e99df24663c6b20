"""The ``course collect`` and ``course lab`` subcommands (arguments and entry points).

Kept apart from :mod:`course_lib.grading.exchange`, which subclasses nbgrader's exchange and so imports
nbgrader (seconds): building the ``course`` parser must not pay that for every command.
"""
from __future__ import annotations


def add_collect_arguments(p) -> None:
    """Options of ``course collect``."""
    p.add_argument("assignment")
    p.add_argument("--zip", dest="archive", help="collect from an LMS submissions archive instead of the exchange "
                                                 "(nbgrader zip_collect)")
    p.add_argument("--lms", choices=["blackboard", "canvas", "moodle"], default="blackboard",
                   help="file-name scheme of --zip (default blackboard; see docs/SERVING.md)")
    p.add_argument("--students", help="roster CSV mapping LMS user names/ids to course student ids")


def cli_collect(args) -> int:
    """``course collect HW [--zip ARCHIVE --lms NAME --students CSV]``."""
    from ..cli import find_course_dir

    course = find_course_dir(args.course_dir)
    if args.archive:
        from .lms import format_zip_report, zip_collect

        report = zip_collect(course, args.assignment, args.archive, lms=args.lms, roster=args.students)
        print(format_zip_report(report))
        return 0
    if args.students:
        raise SystemExit("course: --students only applies with --zip ARCHIVE (the exchange knows Unix user names).")
    from .exchange import collect, exchange_root

    report = collect(course, args.assignment)
    for s in report["collected"]:
        print(f"collected {s:<20} -> submitted/{s}/{args.assignment}")
    for name in report["refused"]:
        print(f"REFUSED   {name}: not owned by the student it names (left in the exchange)")
    if not report["collected"]:
        print(f"course: no submissions of {args.assignment} in {exchange_root(course)} yet")
    return 1 if report["refused"] else 0


def add_lab_arguments(p) -> None:
    """Options of ``course lab``."""
    p.add_argument("--port", type=int, help="port (default: JupyterLab's, 8888 or the next free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")


def cli_lab(args) -> int:
    """``course lab``: JupyterLab on the course with the exchange and the venv on PATH."""
    from ..cli import find_course_dir
    from .exchange import run_lab

    return run_lab(find_course_dir(args.course_dir), port=args.port, open_browser=not args.no_browser)
