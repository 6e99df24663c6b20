"""The results store: an append-only JSONL file (one line per finished run) and a manifest.

``results/<study>/runs.jsonl`` gets one JSON line per finished run, written with a single
``write`` then flushed and fsync'ed, so a killed process leaves at most one torn last line; the
next open cuts it off. Nothing is ever rewritten: a resumed study reads the finished runs back by
their key and only computes the missing ones. ``manifest.json`` records the study file's hash
and resolved configuration, and for every session that wrote to the store the package versions,
Python, CPU/GPU model and git commit. Results from a different study text are refused.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..validation import CourseError

__all__ = ["ResultsStore", "environment", "strip_timing"]

PACKAGES = ("course-lib", "numpy", "scipy", "torch", "optuna", "dask", "distributed", "scikit-learn",
            "pytorch-optimizer", "cma", "cmaes")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_model() -> str | None:
    """The first GPU's name: from torch when it is loaded, else from nvidia-smi (None when there is none)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(repo: Path | None = None) -> dict:
    """Versions, interpreter, hardware and the course_lib git commit (JSON-ready)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    repo = repo or Path(__file__).resolve().parents[2]
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(), "gpu": _gpu_model(), "packages": versions, "git_commit": _git_commit(repo),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def strip_timing(record: dict) -> dict:
    """A record without its wall-clock fields (what a bit-identical rerun must reproduce)."""
    return {k: v for k, v in record.items() if k != "timing"}


class ResultsStore:
    """The folder of one study's results.

    Args:
        folder: where runs.jsonl and manifest.json live (created).
        study: the Study (its hash guards against mixing two studies' results).
    """

    def __init__(self, folder, study=None):
        self.folder = Path(folder)
        self.runs_path = self.folder / "runs.jsonl"
        self.manifest_path = self.folder / "manifest.json"
        self.study = study

    # -- manifest -------------------------------------------------------------------------------
    def open(self) -> dict:
        """Create or check the store for ``study`` and return the finished runs.

        This session's environment is added to the manifest with the first run it stores (a rerun that
        only reuses stored runs leaves the manifest as it was).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        if manifest is not None and self.study is not None and manifest.get("study_hash") != self.study.hash:
            raise CourseError(
                f"{self.folder} holds results of a different study file (hash {manifest.get('study_hash', '?')[:12]}, "
                f"this one {self.study.hash[:12]}). Use --out DIR for a new folder, or delete {self.folder} to "
                "start over.")
        if manifest is None:
            where = os.path.relpath(self.study.path, self.folder) if self.study.path else None
            manifest = {"study": self.study.name, "study_file": where, "study_hash": self.study.hash,
                        "study_text": self.study.text, "resolved": self.study.to_dict(), "sessions": []}
            self._write_manifest(manifest)
        self._session_added = False
        return self.load()

    def _write_manifest(self, manifest: dict) -> None:
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, self.manifest_path)

    def manifest(self) -> dict | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())

    # -- runs -------------------------------------------------------------------------------------
    def load(self) -> dict:
        """Finished runs by key (a torn last line from a killed writer is cut off)."""
        if not self.runs_path.exists():
            return {}
        data = self.runs_path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.runs_path, "r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        runs = {}
        for line in data.decode().splitlines():
            if line.strip():
                rec = json.loads(line)
                runs.setdefault(rec["key"], rec)
        return runs

    def append(self, record: dict) -> None:
        """Write one finished run as one line, flushed to disk (the first one also records this session)."""
        if not getattr(self, "_session_added", True):
            manifest = self.manifest()
            manifest["sessions"].append(environment())
            self._write_manifest(manifest)
            self._session_added = True
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        with open(self.runs_path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[dict]:
        return list(self.load().values())
