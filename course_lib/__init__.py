"""course_lib: the library of the course "Optimization for AI".

One module per chapter -- ``preliminaries`` (0), ``convex`` (1), ``stochastic`` (2), ``online`` (3),
``nonconvex`` (4), ``pac_bayes`` (5) -- on top of a small core: ``backend`` (NumPy or PyTorch,
CPU or CUDA), ``problems`` (objectives with known constants), ``trace`` (what a run records),
``plotting`` and ``datasets``. ``grading`` holds the checks used by the autograded assignments.
"""
__version__ = "0.1.0"
