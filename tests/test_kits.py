"""Every project kit: both studies load; a quick version of the starter study runs with every run ok; the kit
workloads, optimizer factories and analyses behave as documented (budget exactness, exact rebuilds, rankings)."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import kit_analysis, kit_workloads, projects
from course_lib.experiments import load_study, loads_study, run_study

REPO = Path(__file__).resolve().parents[1]
TOPICS = ["adam_variants", "sam_variants", "distributed", "pruning"]  # the kits of this file; other kits' authors add theirs


def quick_version(text: str, amount: int = 24) -> str:
    """The starter study at 1 trial, 1 seed and a tiny budget (every workload and method still runs)."""
    text = re.sub(r"(?m)^seeds = \d+", "seeds = 1", text)
    text = re.sub(r"(?m)^trials = \d+", "trials = 1", text)
    text = re.sub(r"(?m)^amount = [\d.e+]+", f"amount = {amount}", text)
    return re.sub(r"(?m)^name = \"([^\"]+)\"", r'name = "\1-quick"', text, count=1)


@pytest.fixture(autouse=True)
def _quiet_warnings(recwarn):
    yield


@pytest.mark.parametrize("topic", TOPICS)
def test_kit_studies_load(topic):
    files = projects.check_kit(topic)
    starter, full = load_study(files["starter.toml"]), load_study(files["full.toml"])
    assert {w.name for w in starter.workloads} <= {w.name for w in full.workloads} | {w.name for w in starter.workloads}
    assert full.trials >= starter.trials and full.seeds >= 5 and full.amount >= starter.amount
    assert all(w.target is not None for w in starter.workloads), "every workload states its target"


@pytest.mark.slow
@pytest.mark.parametrize("topic", TOPICS)
def test_quick_starter_study_runs(topic, tmp_path):
    text = quick_version((REPO / "projects" / topic / "starter.toml").read_text())
    path = tmp_path / "starter.toml"
    path.write_text(text)
    records = run_study(path, jobs=0, out=tmp_path / "out")
    study = load_study(path)
    per_workload = sum(1 + (1 if m.tune and m.space else 0) for m in study.methods)  # 1 final seed (+ 1 trial)
    assert len(records) == len(study.workloads) * per_workload
    bad = [(r["key"], r["message"]) for r in records if r["status"] != "ok"]
    assert not bad
    for r in records:
        assert r["spent"]["gradients"] <= 24 and r["spent"]["spent"] == r["spent"]["gradients"]
    assert (tmp_path / "out" / "report.md").is_file()


def test_sam_variant_pays_two_gradients_per_step(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text("""
[study]
name = "sam-budget"
seeds = 1
[study.budget]
unit = "gradients"
amount = 21
[study.tuning]
trials = 0
[[workload]]
name = "noisy"
factory = "course_lib.kit_workloads:noisy_digits"
args = { eval_every = 1 }
metric = "train_loss"
[[method]]
name = "gsam"
kind = "optimizer"
target = "course_lib.kit_workloads:sam_variant"
closure = true
fixed = { variant = "gsam", lr = 0.1 }
tune = false
[[method]]
name = "sgd"
kind = "optimizer"
target = "torch.optim.SGD"
fixed = { lr = 0.1 }
tune = false
""")
    recs = {r["method"]: r for r in run_study(study, jobs=0, out=tmp_path / "o")}
    # 21 gradients: SGD makes 21 steps; GSAM 10 steps (20 gradients), the 11th step's first gradient is the
    # 21st and its second would exceed the budget (the step is undone)
    assert recs["sgd"]["spent"]["gradients"] == 21 and recs["gsam"]["spent"]["gradients"] == 21
    # the curve is logged after each completed step (eval_every = 1): every gradient for SGD, every 2nd for GSAM
    assert recs["sgd"]["curve"]["budget"] == [float(b) for b in range(22)]
    assert recs["gsam"]["curve"]["budget"][:11] == [float(b) for b in range(0, 21, 2)]


def test_adam_variant_factory_and_errors():
    model = torch.nn.Linear(3, 2)
    opt = kit_workloads.adam_variant(model.parameters(), optimizer="lion", lr=1e-3)
    assert opt.state_numel() == 8
    with pytest.raises(ValueError, match="not an update rule"):
        kit_workloads.adam_variant(model.parameters(), optimizer="Optimizer")
    with pytest.raises(ValueError, match="needs the model"):
        kit_workloads.adam_variant(model.parameters(), optimizer="adam_mini")


def test_state_memory_on_the_char_transformer():
    from course_lib import adam_variants as A
    from course_lib import optimizers as O
    from course_lib.char_transformer import CharTransformer

    model = CharTransformer(60, block_size=16, d_model=32, n_heads=2)
    P = sum(p.numel() for p in model.parameters())
    out = kit_analysis.state_memory(model, {
        "adamw": lambda m: O.TorchOptimizer(O.adamw(), m.parameters()),
        "amsgrad": lambda m: O.TorchOptimizer(O.amsgrad(), m.parameters()),
        "lion": lambda m: O.TorchOptimizer(A.lion(), m.parameters()),
        "adam_mini": lambda m: A.adam_mini_torch(m, num_embeds=32, num_heads=2),
    })
    assert out["parameters"] == P and out["adamw"] == 2.0 and out["amsgrad"] == 3.0 and out["lion"] == 1.0
    embed = model.tok_embed.weight.numel() + model.pos_embed.weight.numel() + model.lm_head.weight.numel()
    n_tensors = len(list(model.parameters()))
    # m for all; v per entry of the 3 embedding/head tensors, per head (2) of q and k, one per other tensor
    assert out["adam_mini"] == (P + embed + 2 * 2 + (n_tensors - 3 - 2)) / P


def test_rotation_gd_is_invariant_adam_is_not():
    r = kit_analysis.rotation_experiment(dim=20, cond=50.0, steps=200, adam_lr=0.05, seed=1)
    gd_axis, gd_rot = r["gd"]
    assert abs(gd_axis - gd_rot) <= 1e-9 * max(gd_axis, 1e-300) + 1e-15  # same iterates up to rounding
    adam_axis, adam_rot = r["adam"]
    assert adam_rot > 1e3 * adam_axis  # Adam's normalisation depends on the basis


def test_ranking_by_trials_is_best_of_the_first_k(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text("""
[study]
name = "rank"
seeds = 1
[study.budget]
unit = "gradients"
amount = 10
[study.tuning]
trials = 3
[[workload]]
name = "lin"
factory = "course_lib.kit_workloads:softmax_regression"
metric = "val_loss"
[[method]]
name = "sgd"
kind = "optimizer"
target = "torch.optim.SGD"
[method.space]
lr = { low = 1e-3, high = 1.0, log = true }
[[method]]
name = "adamw"
kind = "optimizer"
target = "course_lib.kit_workloads:adam_variant"
fixed = { optimizer = "adamw" }
[method.space]
lr = { low = 1e-4, high = 1e-1, log = true }
""")
    run_study(study, jobs=0, out=tmp_path / "o")
    out = kit_analysis.ranking_by_trials(study, tmp_path / "o", "lin")
    recs = [json.loads(l) for l in (tmp_path / "o" / "runs.jsonl").read_text().splitlines()]
    for m in ("sgd", "adamw"):
        vals = [r["validation_metric"] for r in sorted((r for r in recs if r["phase"] == "tune" and r["method"] == m),
                                                       key=lambda r: int(r["trial"]))]
        assert out["scores"][m] == [min(vals[:k]) for k in (1, 2, 3)]
    for k, ranking in enumerate(out["ranking"]):
        assert ranking == sorted(out["scores"], key=lambda m: out["scores"][m][k])


@pytest.mark.slow
def test_rebuilt_final_models_reproduce_the_harness_metric(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(quick_version((REPO / "projects" / "sam_variants" / "starter.toml").read_text(), amount=40))
    run_study(study, jobs=0, out=tmp_path / "o")
    rows = kit_analysis.flatness_of_final_runs(study, tmp_path / "o", "digits-noise40", cache="f.json")
    assert len(rows) == 8  # 4 methods x (1 trial + 1 final seed)
    for row in rows:
        assert row["test_accuracy"] == row["harness_metric"]  # the rebuild is bit-identical
        assert row["sharpness"] > 0 and 0 <= row["ece"] <= 1
        assert row["generalization_gap"] == pytest.approx(row["train_accuracy"] - row["test_accuracy"], abs=1e-12)
    assert kit_analysis.flatness_of_final_runs(study, tmp_path / "o", "digits-noise40", cache="f.json") == rows
