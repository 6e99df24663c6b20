"""Fine-tuning loop, the embedding cache and its rebuild command, on the real MiniLM."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from course_lib import finetune, pretrained  # noqa: E402
from course_lib.validation import CourseError  # noqa: E402

COMMITTED = Path(__file__).resolve().parents[1] / "projects" / "data" / "minilm_genre.npz"


def test_cache_command_builds_what_a_fresh_model_computes(tmp_path):
    path = tmp_path / "c.npz"
    cmd = [sys.executable, "-m", "course_lib.finetune", "cache", str(path), "--n-train", "6", "--n-val", "2",
           "--n-test", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "10 lines embedded (384 dims)" in out.stdout
    cache = finetune.embedding_cache(path, n_train=6, n_val=2, n_test=2)
    model = pretrained.MiniLMClassifier()
    ids, mask = pretrained.tokenize(cache["lines_train"], max_length=32)
    with torch.no_grad():
        np.testing.assert_allclose(cache["X_train"], model.embed(ids, mask).numpy(), rtol=1e-4, atol=1e-5)
    mtime = path.stat().st_mtime_ns
    finetune.embedding_cache(path, n_train=6, n_val=2, n_test=2)  # matching settings: read, not rebuilt
    assert path.stat().st_mtime_ns == mtime


def test_committed_cache_matches_the_model():
    """The cache the notebooks read equals a recomputation on a sample of its lines."""
    cache = finetune.embedding_cache(COMMITTED)  # default settings: must match, or this would rebuild it
    assert cache["X_train"].shape == (512, 384) and cache["X_test"].shape == (256, 384)
    model = pretrained.MiniLMClassifier()
    ids, mask = pretrained.tokenize(cache["lines_val"][:4], max_length=32)
    with torch.no_grad():
        np.testing.assert_allclose(cache["X_val"][:4], model.embed(ids, mask).numpy(), rtol=1e-4, atol=1e-5)


def test_train_counts_its_budget_and_only_moves_trainable_params():
    data = pretrained.genre_data(n_train=16, n_val=8, n_test=8, max_length=12, seed=1)
    model, n = finetune.make_model("bias_only")
    frozen = model.encoder.encoder.layer[0].attention.self.query.weight.detach().clone()
    res = finetune.train(model, data, epochs=1, batch_size=8, step_size=1e-3, seed=0)
    assert res["steps"] == 2 and res["examples"] == 16 and res["trainable"] == n
    assert torch.equal(model.encoder.encoder.layer[0].attention.self.query.weight, frozen)
    assert 0.0 <= res["val_accuracy"] <= 1.0 and all(np.isfinite(l) for _, l in res["curve"])


def test_bad_cache_settings_are_named(tmp_path):
    with pytest.raises(CourseError, match="n_trian"):
        finetune.embedding_cache(tmp_path / "x.npz", n_trian=3)
