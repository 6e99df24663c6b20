"""course_lib.char_transformer: causality, shapes, data splits, parameter names Adam-mini reads, a loss that falls."""
import math

import numpy as np
import pytest
import torch

from course_lib.adam_variants import adam_mini_blocks
from course_lib.char_transformer import CharTransformer, char_data, lm_loss
from course_lib.datasets import shakespeare_text
from course_lib.validation import CourseError


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # tiny matrices: one thread is fastest, and the machine's two cores are shared
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    return char_data(shakespeare_text("tempest"), block_size=16, max_chars=20000)


def test_windows_are_next_character_targets_and_splits_do_not_overlap(data):
    x, y = data.train
    assert x.shape == y.shape and x.shape[1] == 16
    np.testing.assert_array_equal(x[0, 1:].numpy(), y[0, :-1].numpy())
    np.testing.assert_array_equal(x[1, 0].numpy(), y[0, -1].numpy())  # windows tile the text
    text = shakespeare_text("tempest")[:20000]
    assert data.decode(x[0]) == text[:16]
    n_chars = sum(part[0].numel() for part in (data.train, data.val, data.test))
    assert n_chars <= 20000
    assert data.decode(data.test[0][0]) == text[int(20000 * 0.9): int(20000 * 0.9) + 16]


def test_attention_is_causal(data):
    model = CharTransformer(len(data.vocab), block_size=16, d_model=16, n_heads=2, n_layers=2, seed=1,
                            dtype="float64")
    idx = data.train[0][:2].clone()
    out = model(idx)
    idx2 = idx.clone()
    idx2[:, 10:] = (idx2[:, 10:] + 1) % len(data.vocab)  # change the future
    out2 = model(idx2)
    torch.testing.assert_close(out[:, :10], out2[:, :10], rtol=0, atol=1e-12)
    assert (out[:, 10:] - out2[:, 10:]).abs().max() > 1e-6


def test_initial_loss_is_log_vocab_and_training_lowers_it(data):
    model = CharTransformer(len(data.vocab), block_size=16, d_model=16, n_heads=2, seed=0)
    with torch.no_grad():
        loss0 = float(lm_loss(model(data.val[0]), data.val[1]))
    assert abs(loss0 - math.log(len(data.vocab))) < 0.05  # N(0, 0.02) weights: near-uniform predictions
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        idx = torch.randint(0, data.train[0].shape[0], (32,), generator=gen)
        opt.zero_grad()
        lm_loss(model(data.train[0][idx]), data.train[1][idx]).backward()
        opt.step()
    with torch.no_grad():
        assert float(lm_loss(model(data.val[0]), data.val[1])) < loss0 - 0.8  # unigram statistics learnt


def test_names_follow_adam_mini_conventions(data):
    model = CharTransformer(len(data.vocab), block_size=16, d_model=16, n_heads=2)
    blocks = adam_mini_blocks(model, num_embeds=16, num_heads=2)
    assert blocks["tok_embed.weight"] == ("full", True) and blocks["lm_head.weight"] == ("full", True)
    assert blocks["blocks.0.q_proj.weight"] == (128, True) and blocks["blocks.0.v_proj.weight"] == (None, True)
    assert blocks["ln_f.weight"] == (None, False)
    assert all(p.param_name == n for n, p in model.named_parameters())


@pytest.mark.parametrize("call,match", [
    (lambda: CharTransformer(10, d_model=10, n_heads=3), "divisible by n_heads"),
    (lambda: char_data("short"), "at least 10 characters"),
    (lambda: char_data("abcdefghijklmnop" * 2, block_size=30), "too short for block_size"),
    (lambda: CharTransformer(10, block_size=4)(torch.zeros(1, 5, dtype=torch.long)), "exceeds block_size"),
])
def test_bad_inputs(call, match):
    with pytest.raises(CourseError, match=match):
        call()
