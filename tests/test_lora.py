"""course_lib.lora against peft's LoRA on the same pretrained MiniLM weights (float64)."""
import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from course_lib import lora, pretrained  # noqa: E402
from course_lib.validation import CourseError  # noqa: E402

TARGETS = ("query", "value", "dense")


@pytest.fixture(scope="module")
def base():
    model = pretrained.MiniLMClassifier(seed=1).double()
    ids, mask = pretrained.tokenize(["Now is the winter of our discontent", "Lord, what fools these mortals be!",
                                     "Out, damned spot! out, I say!"], max_length=16)
    return model, ids, mask, torch.tensor([1, 0, 1])


def _pair(base, r=4, alpha=8.0):
    model, ids, mask, y = base
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    names = lora.apply_lora(ours, r=r, alpha=alpha, target_modules=TARGETS, seed=0)
    theirs = lora.peft_lora(theirs, r=r, alpha=alpha, target_modules=TARGETS)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # B != 0, so the adapter really acts; copy peft's factors into ours
        for name in names:
            pm = theirs.base_model.model.get_submodule(name)
            pm.lora_B["default"].weight.copy_(0.05 * torch.randn(pm.lora_B["default"].weight.shape, generator=gen,
                                                                 dtype=torch.float64))
            om = ours.get_submodule(name)
            om.A.copy_(pm.lora_A["default"].weight)
            om.B.copy_(pm.lora_B["default"].weight)
    return ours, theirs, names


def test_outputs_and_gradients_equal_peft(base):
    model, ids, mask, y = base
    ours, theirs, names = _pair(base)
    assert len(names) == 6 * 5  # query, value, attention-output dense, intermediate dense, output dense per layer
    lo, lt = ours(ids, mask), theirs(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(lo, lt, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        assert (lo - model(ids, mask)).abs().max() > 1e-4  # the adapter changes the output
    torch.nn.functional.cross_entropy(lo, y).backward()
    torch.nn.functional.cross_entropy(lt, y).backward()
    for name in names:
        om, pm = ours.get_submodule(name), theirs.base_model.model.get_submodule(name)
        torch.testing.assert_close(om.A.grad, pm.lora_A["default"].weight.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(om.B.grad, pm.lora_B["default"].weight.grad, rtol=1e-10, atol=1e-12)
    assert lora.count_trainable(ours) == sum(p.numel() for p in theirs.parameters() if p.requires_grad)


def test_initial_adapter_is_the_identity_and_a_follows_kaiming_bound(base):
    model, ids, mask, _ = base
    adapted = copy.deepcopy(model)
    lora.apply_lora(adapted, r=8, alpha=16, target_modules=("query",), seed=0)
    with torch.no_grad():
        torch.testing.assert_close(adapted(ids, mask), model(ids, mask), rtol=0, atol=0)
    layer = adapted.encoder.encoder.layer[0].attention.self.query
    assert float(layer.A.detach().abs().max()) <= 1 / 384 ** 0.5 and float(layer.B.detach().abs().max()) == 0.0
    assert layer.scaling == 2.0


def test_merged_model_equals_adapted_model_and_peft_merge(base):
    model, ids, mask, _ = base
    ours, theirs, _ = _pair(base)
    with torch.no_grad():
        adapted = ours(ids, mask)
        merged = lora.merge_lora(ours)
        assert not any(type(m).__name__ == "LoRALinear" for m in merged.modules())
        torch.testing.assert_close(merged(ids, mask), adapted, rtol=1e-12, atol=1e-12)
        peft_merged = theirs.merge_and_unload()
        torch.testing.assert_close(peft_merged(ids, mask), adapted, rtol=1e-12, atol=1e-12)


def test_modes_count_the_right_parameters(base):
    model, *_ = base
    counts = {mode: lora.set_trainable(copy.deepcopy(model), mode) for mode in ("full", "linear_probe", "bias_only")}
    assert counts["full"] == 22_565_376 + 384 * 2 + 2
    assert counts["linear_probe"] == 384 * 2 + 2
    n_bias = sum(p.numel() for n, p in model.encoder.named_parameters() if n.endswith("bias"))
    assert counts["bias_only"] == n_bias + 770
    r = 8
    n_lora = lora.set_trainable(copy.deepcopy(model), "lora", r=r, target_modules=("query", "value"))
    assert n_lora == 6 * 2 * r * (384 + 384) + 770
    assert lora.lora_parameter_count(model, r, ("query", "value")) == n_lora
    all_linear = ("query", "key", "value", "dense")
    n_all = lora.set_trainable(copy.deepcopy(model), "lora", r=3, target_modules=all_linear)
    assert lora.lora_parameter_count(model, 3, all_linear) == n_all == 6 * 3 * (4 * 768 + 2 * 1920) + 770


def test_bad_input_is_named(base):
    model, *_ = base
    with pytest.raises(CourseError, match="target_modules"):
        lora.apply_lora(copy.deepcopy(model), target_modules=("qkv",))
    with pytest.raises(CourseError, match="mode"):
        lora.set_trainable(copy.deepcopy(model), "adapters")
    with pytest.raises(CourseError, match="r"):
        lora.apply_lora(copy.deepcopy(model), r=0)
