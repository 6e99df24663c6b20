"""Feedback HTML that renders its maths with no network: MathJax inlined from an installed package.

nbconvert's HTML loads MathJax 2.7 from a CDN, so a student reading feedback offline sees raw
``$...$``. :func:`inline_mathjax` replaces that block with MathJax 3's single-file TeX-to-SVG
component (``es5/tex-svg-full.js`` of the ``django-static-mathjax`` wheel, an unmodified MathJax 3.2.2,
Apache-2.0) inside the page itself, configured like nbconvert's (``$...$`` and ``\\(...\\)`` inline,
``$$...$$`` and ``\\[...\\]`` display, AMS equation numbers). SVG output needs no font files, so the
HTML file is self-contained: it renders wherever it is copied (feedback/, the exchange, an e-mail).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

__all__ = ["mathjax_source", "inline_mathjax", "remote_references"]

# nbconvert's base/mathjax.html.j2 macro, from its first comment to its last one
_NBCONVERT_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_CONFIG = """window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'},
  options: {enableMenu: false}
};"""
_REMOTE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.I)


@lru_cache(maxsize=1)
def mathjax_source() -> str:
    """The text of MathJax 3's ``tex-svg-full.js`` from the installed ``django-static-mathjax`` package."""
    try:
        import mathjax  # the django-static-mathjax distribution's package: static files only
    except ImportError as err:
        raise RuntimeError("offline maths in feedback needs the django-static-mathjax package; "
                           "install the course extra: pip install -e '.[course]'") from err
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg-full.js"
    return path.read_text(encoding="utf-8").replace("</script", "<\\/script")


def inline_mathjax(html: str) -> str:
    """``html`` with nbconvert's CDN MathJax replaced by an inline MathJax 3 (unchanged if it has none).

    Args:
        html: a page written by nbconvert's HTML exporter (e.g. by ``nbgrader generate_feedback``).
    Returns:
        The page, self-contained for maths: no remote ``src``/``href`` left by the MathJax block.
    """
    if not _NBCONVERT_BLOCK.search(html):
        return html
    block = (f"<!-- MathJax 3 (tex-svg-full), inlined for offline reading -->\n<script>\n{_CONFIG}\n</script>\n"
             f"<script>\n{mathjax_source()}\n</script>")
    return _NBCONVERT_BLOCK.sub(lambda _: block, html, count=1)


def remote_references(html: str) -> list[str]:
    """The opening tags of ``script``/``link``/``img``/``iframe`` elements that load something over the network."""
    return [html[m.start(): html.find(">", m.start()) + 1] for m in _REMOTE.finditer(html)]
