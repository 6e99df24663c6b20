"""Phase II project kits and team repositories: ``course project new`` and ``course project review``.

A *kit* is a folder ``projects/<topic>/`` of this repository (docs/PROJECTS.md describes its shape):
``README.md`` (questions, reading list, the finding its notebook reproduces), ``starter.toml`` (a
study that runs in under 3 minutes on 2 cores), ``full.toml`` (a team's budget) and
``<topic>.ipynb``.

    course project list                                  the kits
    course project new DIR --topic TOPIC --team NAME     a team repository from a kit (git init + first commit)
    course project review DIR --paper TITLE              the journal-club slide notebook

The team repository holds the kit's studies, ``src/`` for the team's methods, ``results/``, a report
skeleton in the brief's structure, a slide notebook for the 25-minute talk and a Makefile whose
``make reproduce`` reruns the study and rebuilds every figure of the report.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .validation import CourseError

__all__ = ["kits_dir", "list_topics", "check_kit", "new_project", "new_review", "rebuild_figures", "add_parser",
           "REPORT_SECTIONS", "REVIEW_SECTIONS"]

KIT_FILES = ("README.md", "starter.toml", "full.toml")
# the project brief's report structure (7 pages) with a page budget per section
REPORT_SECTIONS = [("Problem setup", 1.0), ("Methods", 1.25), ("Experimental design", 1.0), ("Results", 1.75),
                   ("Analysis", 1.25), ("Limitations", 0.5), ("Takeaways", 0.25)]
# the journal-club talk: 18 minutes including questions
REVIEW_SECTIONS = [("Motivation", 2), ("Approach", 4), ("Main results", 4), ("Critical review", 3),
                   ("Questions", 5)]
TALK_MINUTES = 25


def kits_dir() -> Path:
    """The folder holding the kits: ``$COURSE_PROJECTS_DIR`` or ``projects/`` of this repository."""
    env = os.environ.get("COURSE_PROJECTS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "projects"


def list_topics() -> list[str]:
    """Names of the kits (folders of :func:`kits_dir` with a README.md and a starter.toml), sorted."""
    root = kits_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and all((p / f).is_file() for f in KIT_FILES[:2]))


def _kit(topic: str) -> Path:
    topics = list_topics()
    if topic not in topics:
        known = ", ".join(topics) if topics else f"none (no kits in {kits_dir()})"
        raise CourseError(f"unknown topic {topic!r}; the kits are: {known}. Run `course project list`.")
    return kits_dir() / topic


def check_kit(topic: str) -> dict:
    """Check a kit has the documented shape; return {file: path}.

    Raises:
        CourseError: naming the missing file, or a study file that does not load.
    """
    from .experiments import load_study

    kit = _kit(topic)
    files = {f: kit / f for f in (*KIT_FILES, f"{topic}.ipynb")}
    for name, path in files.items():
        if not path.is_file():
            raise CourseError(f"kit {topic!r} has no {name} (docs/PROJECTS.md lists what a kit holds).")
    for name in ("starter.toml", "full.toml"):
        load_study(files[name])
    return files


def _empty_target(dest) -> Path:
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise CourseError(f"{dest} already exists and is not empty; choose a new folder (nothing was written).")
    return dest


def _slug(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise CourseError(f"{what} must be a non-empty name, got {text!r}.")
    slug = re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")
    if not slug:
        raise CourseError(f"{what} = {text!r} has no letters or digits; use e.g. --team falcons.")
    return slug


def _notebook(cells) -> "object":
    """A slide notebook: cells = [(kind, source, slide_type)]."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["celltoolbar"] = "Slideshow"
    for kind, source, slide in cells:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        cell.metadata["slideshow"] = {"slide_type": slide}
        nb.cells.append(cell)
    return nb


def _git_init(dest: Path, message: str, author: str) -> str:
    if shutil.which("git") is None:
        raise CourseError("git is not installed; install it, or pass --no-git and run `git init` yourself.")
    env = dict(os.environ, GIT_AUTHOR_NAME=author, GIT_COMMITTER_NAME=author,
               GIT_AUTHOR_EMAIL=f"{author}@course.invalid", GIT_COMMITTER_EMAIL=f"{author}@course.invalid")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", message]):
        res = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True)
        if res.returncode:
            raise CourseError(f"`{' '.join(cmd)}` failed in {dest}: {res.stderr.strip().splitlines()[-1:]}")
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, capture_output=True, text=True).stdout.strip()


# -- the team repository ---------------------------------------------------------------------------
_CHECKLIST = """\
## Reproducibility checklist (tick each before you hand in)

- [ ] `make reproduce` on a fresh clone reruns the study and rebuilds every figure of `report/` (no manual step).
- [ ] The environment is pinned: the course's `constraints.txt` (or `pip freeze > results/requirements.txt`).
- [ ] Every setting is in the study file: workloads, methods, search spaces, budget and unit, tuning trials, seeds.
- [ ] Every method got the same budget (counted in the oracle) and the same number of tuning trials.
- [ ] Tuning and final runs are separate; final numbers come from >= 5 fresh seeds, with 95% intervals.
- [ ] Diverged and failed runs are reported, not dropped (the report counts them).
- [ ] `results/` holds `runs.jsonl` and `manifest.json` (versions, hardware, git commit) of the reported runs.
- [ ] The team's methods in `src/` have tests against a reference (a library, a closed form, a theorem).
- [ ] Every claim in the report points to a figure or table that `make reproduce` produces.
"""


def _readme(team: str, topic: str, kit_readme: str) -> str:
    title = kit_readme.splitlines()[0].lstrip("# ").strip() if kit_readme else topic
    return f"""# {title}: project of team {team}

Topic kit: `{topic}` (its README is copied to `KIT.md`: the questions, the reading list and the finding its
notebook reproduces).

```bash
make reproduce          # rerun study.toml (results/study/) and rebuild report/figures/
make full               # the full study (full.toml, results/full/): a team's budget
make slides             # slides.html from slides.ipynb (jupyter nbconvert --to slides)
```

Layout: `study.toml` (the study you report; start from the kit's starter), `full.toml`, `src/` (your methods, named
in the study files by import path, e.g. `target = "src.team_methods:my_optimizer"`), `results/` (written by the
harness), `report/report.md` (7 pages) with `report/figures/`, `slides.ipynb` (the {TALK_MINUTES}-minute talk).

{_CHECKLIST}"""


def _report(team: str, topic: str) -> str:
    parts = [f"# Report: {topic} (team {team})", "",
             "7 pages in all; the page budget of each section is a guide. Every number below comes from "
             "`make reproduce` (figures in `figures/`, the results table in `figures/results.md`).", ""]
    hints = {
        "Problem setup": "The question, why it matters, the workloads and the metric each is judged by (with targets).",
        "Methods": "Each method's update rule and hyperparameters; which are the kit's baselines and which are yours.",
        "Experimental design": "Budget unit and amount, tuning protocol (trials, sampler, score), seeds; why it is fair.",
        "Results": "The results table (figures/results.md) and the convergence curves "
                   "(![curves](figures/curves_WORKLOAD.png)); the performance profile when there are several workloads.",
        "Analysis": "What explains the results; the ablations; paired comparisons against the baseline.",
        "Limitations": "What the budget, the workloads or the tuning protocol cannot tell.",
        "Takeaways": "Three sentences a practitioner can act on.",
    }
    for name, pages in REPORT_SECTIONS:
        parts += [f"## {name} ({pages:g} page{'s' if pages > 1 else ''})", "", hints[name], ""]
    return "\n".join(parts)


def _slides(team: str, topic: str):
    minutes = {"Problem setup": 3, "Methods": 4, "Experimental design": 4, "Results": 6, "Analysis": 4,
               "Limitations": 2, "Takeaways": 2}
    cells = [("md", f"# {topic}\n\nTeam {team}\n\n{TALK_MINUTES}-minute presentation "
                    "(`jupyter nbconvert --to slides slides.ipynb`)", "slide")]
    for name, _ in REPORT_SECTIONS:
        cells.append(("md", f"## {name}\n\n*About {minutes[name]} minutes.*", "slide"))
        if name == "Results":
            cells.append(("code", "from IPython.display import Image, Markdown, display\nfrom pathlib import Path\n"
                                  "for png in sorted(Path('report/figures').glob('*.png')):\n"
                                  "    display(Markdown(f'**{png.stem}**'), Image(str(png)))", "subslide"))
    return _notebook(cells)


_MAKEFILE = """\
# make reproduce: rerun the study and rebuild every figure of the report (the course's harness, docs/EXPERIMENTS.md)
PYTHON ?= python
JOBS ?= 2
STUDY ?= study.toml
OUT ?= results/study

.PHONY: reproduce figures full slides clean

reproduce:
\t$(PYTHON) -m course_lib.cli experiment run $(STUDY) --jobs $(JOBS) --out $(OUT)
\t$(MAKE) figures

figures:
\t$(PYTHON) -m course_lib.projects figures $(STUDY) $(OUT) report/figures

full:
\t$(MAKE) reproduce STUDY=full.toml OUT=results/full

slides:
\tjupyter nbconvert --to slides slides.ipynb

clean:
\trm -rf report/figures/*.png report/figures/results.md
"""

_TEAM_METHODS = '''"""The team's methods, named in the study files by import path ("src.team_methods:NAME").

A method of kind "optimizer" is a torch.optim-style class or a factory f(params, **hp) (docs/EXPERIMENTS.md,
section 5); one of kind "algorithm" is f(oracle, x0, *, seed, **hp). Test each against a reference in tests/.
"""
import torch


def sgd_with_momentum(params, *, lr=0.1, momentum=0.9):
    """An example to replace: torch.optim.SGD with heavy-ball momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum)
'''


_TEAM_TEST = '''"""Tests of the team's methods (run: python -m pytest tests). Check each against a reference."""
import torch

from src.team_methods import sgd_with_momentum


def test_example_equals_torch_sgd():
    a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    b.load_state_dict(a.state_dict())
    X, y = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(8, 1)
    for model, opt in ((a, sgd_with_momentum(a.parameters(), lr=0.1)),
                       (b, torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9))):
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X), y).backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
'''


def _rename_study(text: str, name: str) -> str:
    return re.sub(r'(?m)^(name\s*=\s*)"[^"]*"', lambda m: f'{m.group(1)}"{name}"', text, count=1)


def new_project(dest, topic: str, team: str, study: str = "starter", git: bool = True) -> Path:
    """Create a team repository from a kit (see the module docstring); return its path.

    Args:
        dest: a new (or empty) folder. topic: a kit name (:func:`list_topics`). team: the team's name.
        study: which kit study becomes ``study.toml``: "starter" (default) or "full".
        git: ``git init`` and commit everything as the first commit.
    Raises:
        CourseError: unknown topic (the message lists the kits), a non-empty dest, a bad team name.
    """
    kit = _kit(topic)
    slug = _slug(team, "team")
    if study not in ("starter", "full"):
        raise CourseError(f"study must be 'starter' or 'full', got {study!r}.")
    dest = _empty_target(dest)
    dest.mkdir(parents=True, exist_ok=True)
    kit_readme = (kit / "README.md").read_text()
    (dest / "KIT.md").write_text(kit_readme)
    (dest / "README.md").write_text(_readme(team, topic, kit_readme))
    (dest / "study.toml").write_text(_rename_study((kit / f"{study}.toml").read_text(), f"{slug}-{topic}"))
    (dest / "full.toml").write_text(_rename_study((kit / "full.toml").read_text(), f"{slug}-{topic}-full"))
    (dest / "src").mkdir()
    (dest / "src" / "__init__.py").write_text("")
    (dest / "src" / "team_methods.py").write_text(_TEAM_METHODS)
    for folder in ("results", "report/figures", "tests"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    (dest / "results" / ".gitkeep").write_text("")
    (dest / "tests" / "test_team_methods.py").write_text(_TEAM_TEST)
    (dest / "report" / "figures" / ".gitkeep").write_text("")
    (dest / "report" / "report.md").write_text(_report(team, topic))
    import nbformat

    nbformat.write(_slides(team, topic), str(dest / "slides.ipynb"))
    if (kit / f"{topic}.ipynb").is_file():
        shutil.copy(kit / f"{topic}.ipynb", dest / f"{topic}.ipynb")
    (dest / "Makefile").write_text(_MAKEFILE)
    (dest / ".gitignore").write_text("__pycache__/\n.ipynb_checkpoints/\nslides.slides.html\n")
    if git:
        _git_init(dest, f"Project {topic} of team {team}: created from the course kit", slug)
    return dest


def new_review(dest, paper: str, presenters: str | None = None, git: bool = False) -> Path:
    """Create the journal-club slide notebook for a paper in a new (or empty) folder; return the notebook path.

    Sections and minutes (18 in all, questions included): Motivation 2, Approach 4, Main results 4,
    Critical review 3, Questions 5.
    """
    import nbformat

    if not isinstance(paper, str) or not paper.strip():
        raise CourseError("--paper must be the paper's title, e.g. --paper 'Sharpness-aware minimization'.")
    dest = _empty_target(dest)
    dest.mkdir(parents=True, exist_ok=True)
    prompts = {
        "Motivation": "What problem does the paper address, and why did it matter in its year?",
        "Approach": "The method in one slide of math: the update rule or the objective, and the key idea.",
        "Main results": "The headline claims with the paper's own figures or tables (cite them); what was compared "
                        "with what, under which budget and tuning.",
        "Critical review": "Are the comparisons fair (budget, tuning, seeds)? What is missing? What would you test "
                           "first, and how would the course's harness let you do it?",
        "Questions": "Two questions to start the discussion.",
    }
    cells = [("md", f"# {paper.strip()}\n\n{presenters or 'Presenters'}\n\nJournal club, "
                    f"{sum(m for _, m in REVIEW_SECTIONS)} minutes including questions", "slide")]
    for name, minutes in REVIEW_SECTIONS:
        cells.append(("md", f"## {name}\n\n*{minutes} minutes.* {prompts[name]}", "slide"))
    path = dest / f"{_slug(paper, 'paper')[:60]}.ipynb"
    nbformat.write(_notebook(cells), str(path))
    (dest / "README.md").write_text(f"# Journal club: {paper.strip()}\n\n`jupyter nbconvert --to slides {path.name}` "
                                    "makes the slides.\n")
    if git:
        _git_init(dest, f"Journal club: {paper.strip()}", "journal-club")
    return path


def rebuild_figures(study, results, figures) -> list[Path]:
    """Rewrite the study's report from ``results`` and copy its figures and results table into ``figures``.

    This is ``make figures`` of a team repository (``make reproduce`` runs the study first).
    Returns:
        The files written into ``figures``.
    """
    from .experiments import load_study, report_study
    from .experiments.report import format_table

    study = load_study(study)
    summary = report_study(study, out=results)
    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    written = []
    for png in sorted(Path(results).glob("*.png")):
        shutil.copy(png, figures / png.name)
        written.append(figures / png.name)
    (figures / "results.md").write_text(format_table(summary) + "\n")
    written.append(figures / "results.md")
    return written


# -- command line ----------------------------------------------------------------------------------
def _fail(args, exc) -> int:
    if getattr(args, "debug", False):
        raise exc
    print(f"course project: {exc}", file=sys.stderr)
    return 2


def _cmd_list(args) -> int:
    topics = list_topics()
    for t in topics:
        first = (kits_dir() / t / "README.md").read_text().splitlines()[0].lstrip("# ")
        print(f"{t:<20} {first}")
    if not topics:
        print(f"no kits in {kits_dir()}")
    return 0


def _cmd_new(args) -> int:
    try:
        path = new_project(args.dir, args.topic, args.team, study=args.study, git=not args.no_git)
    except (CourseError, OSError) as exc:
        return _fail(args, exc)
    print(f"created {path} from kit {args.topic!r}{'' if args.no_git else ' (git repository, first commit)'}; "
          f"next: cd {path} && make reproduce")
    return 0


def _cmd_review(args) -> int:
    try:
        path = new_review(args.dir, args.paper, args.presenters)
    except (CourseError, OSError) as exc:
        return _fail(args, exc)
    print(f"created {path}; make the slides with: jupyter nbconvert --to slides {path}")
    return 0


def add_parser(sub) -> None:
    """Add ``course project list|new|review`` to the ``course`` subparsers."""
    p = sub.add_parser("project", help="Phase II: create a team repository from a project kit, or a journal-club "
                                       "slide notebook.", description=__doc__.split("\n\n")[0])
    grp = p.add_subparsers(dest="project_command", required=True, metavar="ACTION")
    ls = grp.add_parser("list", help="list the project kits")
    ls.set_defaults(func=_cmd_list)
    n = grp.add_parser("new", help="create a team repository from a kit (git init + first commit)")
    n.add_argument("dir", help="a new (or empty) folder")
    n.add_argument("--topic", required=True, help="the kit (see `course project list`)")
    n.add_argument("--team", required=True, help="the team's name")
    n.add_argument("--study", default="starter", choices=["starter", "full"],
                   help="which kit study becomes study.toml (default starter)")
    n.add_argument("--no-git", action="store_true", help="do not run git init / the first commit")
    n.add_argument("--debug", action="store_true", help="show tracebacks")
    n.set_defaults(func=_cmd_new)
    r = grp.add_parser("review", help="create the journal-club slide notebook for a paper")
    r.add_argument("dir", help="a new (or empty) folder")
    r.add_argument("--paper", required=True, help="the paper's title")
    r.add_argument("--presenters", help="names on the title slide")
    r.add_argument("--debug", action="store_true", help="show tracebacks")
    r.set_defaults(func=_cmd_review)


def _main(argv=None) -> int:
    """``python -m course_lib.projects figures STUDY RESULTS FIGURES`` (the team Makefile's figure step)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4 or argv[0] != "figures":
        print("usage: python -m course_lib.projects figures STUDY RESULTS FIGURES", file=sys.stderr)
        return 2
    try:
        files = rebuild_figures(*argv[1:])
    except (CourseError, OSError) as exc:
        print(f"course project: {exc}", file=sys.stderr)
        return 2
    print(f"{len(files)} figure file(s) in {argv[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
