"""Writing a benchmark's latest full-run table into benchmarks/README.md (between its BEGIN/END markers)."""
from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def markers(name: str) -> tuple[str, str]:
    """The comment lines that delimit benchmark ``name``'s results in the README."""
    return f"<!-- BEGIN {name} results -->", f"<!-- END {name} results -->"


def update_readme(name: str, md: str, readme: Path = README) -> bool:
    """Replace the text between ``name``'s markers by ``md``; False (and no change) if the markers are absent."""
    begin, end = markers(name)
    if not readme.exists():
        return False
    text = readme.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(f"{head}{begin}\n{md.rstrip()}\n{end}{tail}")
    return True
