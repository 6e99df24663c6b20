"""Run the benchmarks: every module of this package that defines ``main(argv)``.

Usage::

    python -m benchmarks                     # all benchmarks, full size
    python -m benchmarks --quick             # all, small sizes (a smoke run, seconds)
    python -m benchmarks --only gd_logistic  # one benchmark (repeat --only for several)
    python -m benchmarks --list              # what would run

Options other than --only / --list are passed on to each benchmark's ``main(argv)``
(``--quick`` is understood by all of them).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time

import benchmarks


def discover() -> dict[str, object]:
    """Benchmark modules of this package (name -> module), sorted by name: those with a ``main``."""
    found = {}
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        if callable(getattr(module, "main", None)):
            found[info.name] = module
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                     epilog="Other options (e.g. --quick) are passed to every benchmark.")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this benchmark (module name, e.g. gd_logistic); repeatable")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark (seconds)")
    args, rest = parser.parse_known_args(argv)
    if args.quick:
        rest = ["--quick", *rest]
    found = discover()
    if args.list:
        for name, module in found.items():
            print(f"{name:20s} {(module.__doc__ or '').strip().splitlines()[0] if module.__doc__ else ''}")
        return 0
    names = list(found)
    if args.only:
        unknown = [n for n in args.only if n not in found]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(found)}")
        names = args.only
    failed = []
    for name in names:
        print(f"== benchmark {name} {' '.join(rest)}", flush=True)
        start = time.perf_counter()
        try:
            code = found[name].main(list(rest))
        except SystemExit as exc:  # argparse inside a benchmark
            code = exc.code
        except Exception as exc:  # keep going: report which benchmark broke
            print(f"!! {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = 1
        if code not in (0, None):
            failed.append(name)
        print(f"== {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
