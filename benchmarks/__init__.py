"""Performance benchmarks of course_lib (not tests): ``python -m benchmarks`` (or ``make bench``).

Every module of this package with a ``main(argv)`` function is a benchmark. Each writes its results
as JSON and markdown to ``benchmarks/results/``. See ``benchmarks/README.md``.
"""
