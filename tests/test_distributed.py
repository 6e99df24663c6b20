"""Chapter 6 on real processes: gloo groups on localhost (2-3 processes, each launch bounded in time).

One launch runs all synchronous schemes one after the other (start-up is the cost: importing torch in each
process), a second one the RPC parameter server. Facts checked:
* DDP (allreduce hook) in float64 equals single-process SGD on the concatenated batches;
* top-k and random-k hooks with k = d are exact (they equal plain SGD), so the exchange and decoding are right;
* each hook's bytes equal its payload size (allreduce d*8, fp16/bf16 d*2, PowerSGD (n + m) r per matrix
  after its warm-up, top-k k*12, random-k k*8, sign ceil(d/8) + 8, QSGD d + 8, per worker and step);
* error feedback in the hook: every worker's sent + residual equals its accumulated gradient;
* local SGD and post-local SGD equal an explicit simulation of M models averaged every H steps;
* DiLoCo with outer lr 1 and no momentum equals local SGD with period H;
* the RPC parameter server under a fixed delay schedule equals the simulated path, with and without DC-ASGD.
"""
import math

import numpy as np
import pytest
import torch

from course_lib.distributed import compression as C
from course_lib.distributed.async_sgd import delay_schedule, parameter_server, simulate_async_sgd
from course_lib.distributed.ddp import ddp_sgd, sgd_reference
from course_lib.distributed.diloco import diloco
from course_lib.distributed.launch import launch, run_jobs
from course_lib.distributed.local_sgd import local_sgd
from course_lib.distributed.workload import digits_workload, flat_grad, flat_params

# real process groups: seconds of start-up each; one xdist worker keeps the module fixtures single
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]

W = digits_workload()
D = 650  # 64 * 10 weights + 10 biases
STEPS, ETA, B = 20, 0.5, 16
HOOKS = {
    "allreduce": {}, "fp16": {}, "bf16": {}, "powersgd": {"rank": 1, "start_iter": 2},
    "top_k": {"k": 20, "error_feedback": True}, "top_k_all": {"k": D}, "random_k_all": {"k": D},
    "random_k": {"k": 65}, "scaled_sign": {"error_feedback": True}, "qsgd": {"levels": 4},
}


def ef_probe(rank, world_size, n_steps):
    """Worker side of the error-feedback check: DDP with the top-k hook, returning grads, sent and residual."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = W.model(0)
    ddp = DDP(model)
    state, hook = C.make_hook("top_k", k=10, error_feedback=True)
    ddp.register_comm_hook(state, hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=ETA)
    acc = torch.zeros(D, dtype=torch.float64)
    twin = W.model(0)  # a copy outside DDP, for the local gradient (DDP hooks fire on any backward of model)
    for k in range(n_steps):
        acc += flat_grad(W, twin, flat_params(model), W.batch(k, rank, world_size, B))
        opt.zero_grad()
        W.loss(ddp, W.batch(k, rank, world_size, B)).backward()
        opt.step()
    return acc, state.residual(list(model.parameters())), state.bytes_sent, torch.nn.utils.parameters_to_vector(
        model.parameters()).detach()


def _hook_job(name):
    opts = dict(HOOKS[name])
    hook = name.replace("_all", "")
    return ddp_sgd, dict(workload=W, n_steps=STEPS, step_size=ETA, batch_size=B, hook=hook, hook_options=opts,
                         log_every=5)


@pytest.fixture(scope="module")
def sync_runs():
    jobs = [_hook_job(name) for name in HOOKS]
    jobs += [(local_sgd, dict(workload=W, n_steps=STEPS, step_size=ETA, period=5, batch_size=B)),
             (local_sgd, dict(workload=W, n_steps=STEPS, step_size=ETA, period=5, warmup_steps=7, batch_size=B)),
             (diloco, dict(workload=W, n_rounds=4, inner_steps=5, inner_lr=ETA, outer_lr=1.0, outer_momentum=0.0,
                           batch_size=B)),
             (diloco, dict(workload=W, n_rounds=4, inner_steps=5, inner_lr=ETA, batch_size=B)),
             (ef_probe, dict(n_steps=8))]
    results = launch(run_jobs, 2, jobs, timeout_s=240)
    names = list(HOOKS) + ["local", "post_local", "diloco_plain", "diloco", "ef"]
    return {n: [results[r][i] for r in range(2)] for i, n in enumerate(names)}


def test_ddp_equals_single_process_sgd_in_float64(sync_runs):
    ref = sgd_reference(W, STEPS, ETA, B, world_size=2, log_every=5)
    tr = sync_runs["allreduce"][0]
    assert sync_runs["allreduce"][1] is None
    torch.testing.assert_close(tr.x_final, ref.x_final, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tr.f, ref.f, rtol=1e-12)
    np.testing.assert_allclose(tr.info["accuracy"], ref.info["accuracy"])
    for exact in ("top_k_all", "random_k_all"):
        torch.testing.assert_close(sync_runs[exact][0].x_final, ref.x_final, rtol=1e-12, atol=1e-14)


def test_every_hook_reports_its_payload_bytes(sync_runs):
    per_step = {"allreduce": D * 8, "fp16": D * 2, "bf16": D * 2, "top_k": 20 * 12, "top_k_all": D * 12,
                "random_k": 65 * 8, "random_k_all": D * 8, "scaled_sign": math.ceil(D / 8) + 8, "qsgd": D + 8}
    for name, b in per_step.items():
        assert sync_runs[name][0].info["bytes"][-1] == 2 * STEPS * b, name
    # PowerSGD: 2 warm-up steps uncompressed, then rank-1 factors of the 10 x 64 weight (10 + 64) and the bias (10)
    assert sync_runs["powersgd"][0].info["bytes"][-1] == 2 * (2 * D * 8 + (STEPS - 2) * (10 + 64 + 10) * 8)


def test_compressed_training_still_learns(sync_runs):
    f0 = sync_runs["allreduce"][0].f[0]
    for name in HOOKS:
        tr = sync_runs[name][0]
        assert tr.status == "max_iter" and tr.f[-1] < 0.5 * f0, (name, tr.f)
    # fp16/bf16 round each averaged gradient: close to, but not equal to, the exact run
    exact = sync_runs["allreduce"][0].x_final
    for name in ("fp16", "bf16"):
        err = float((sync_runs[name][0].x_final - exact).norm() / exact.norm())
        assert 0 < err < 0.05, (name, err)


def test_error_feedback_in_the_hook_loses_nothing(sync_runs):
    """Plain SGD applies the average of what was sent: x_T = x_0 - eta mean_m sum_t sent_t^m, and error
    feedback's invariant says sum_t sent_t^m = (accumulated gradient of worker m) - (its final residual)."""
    runs = sync_runs["ef"]
    x0 = torch.nn.utils.parameters_to_vector(W.model(0).parameters()).detach()
    sent = sum(acc - residual for acc, residual, _, _ in runs) / 2
    for acc, residual, nbytes, x_final in runs:
        assert nbytes == 8 * 10 * 12
        assert torch.count_nonzero(residual) > D - 8 * 10  # most of the gradient waits in the residual
        torch.testing.assert_close(x_final, x0 - ETA * sent, rtol=1e-10, atol=1e-12)


def _simulate_local_sgd(n_steps, period, warmup, world_size=2):
    """M explicit models: synchronous mean-gradient steps for t < warmup, then local steps, averaged every period."""
    models = [W.model(0) for _ in range(world_size)]
    opts = [torch.optim.SGD(m.parameters(), lr=ETA) for m in models]
    for k in range(n_steps):
        for r, (m, o) in enumerate(zip(models, opts)):
            o.zero_grad()
            W.loss(m, W.batch(k, r, world_size, B)).backward()
        if k < warmup:
            for ps in zip(*(m.parameters() for m in models)):
                mean = sum(p.grad for p in ps) / world_size
                for p in ps:
                    p.grad = mean.clone()
        for o in opts:
            o.step()
        if k >= warmup and (k - warmup + 1) % period == 0:
            with torch.no_grad():
                for ps in zip(*(m.parameters() for m in models)):
                    mean = sum(p for p in ps) / world_size
                    for p in ps:
                        p.copy_(mean)
    return torch.nn.utils.parameters_to_vector(models[0].parameters()).detach()


def test_local_and_post_local_sgd_average_every_period(sync_runs):
    torch.testing.assert_close(sync_runs["local"][0].x_final, _simulate_local_sgd(STEPS, 5, 0), rtol=1e-12,
                               atol=1e-14)
    # post-local: 7 synchronous steps, then rounds of 5 local steps; step 20 is mid-round, so compare after 17
    post = sync_runs["post_local"][0]
    torch.testing.assert_close(post.x_final, _simulate_local_sgd(STEPS, 5, 7), rtol=1e-12, atol=1e-14)
    assert sync_runs["local"][0].info["bytes"][-1] == 2 * (STEPS // 5) * D * 8
    assert post.info["bytes"][-1] == 2 * (7 + 2) * D * 8  # 7 gradient allreduces + averages after steps 12 and 17


def test_diloco_with_outer_sgd_lr_one_is_local_sgd(sync_runs):
    torch.testing.assert_close(sync_runs["diloco_plain"][0].x_final, sync_runs["local"][0].x_final, rtol=1e-12,
                               atol=1e-14)
    tr = sync_runs["diloco"][0]
    assert tr.info["bytes"][-1] == 2 * 4 * D * 8 and tr.iteration[-1] == STEPS
    assert tr.f[-1] < tr.f[0]


@pytest.fixture(scope="module")
def rpc_runs():
    sched = delay_schedule(24, [0, 3])
    jobs = [(parameter_server, dict(workload=W, n_steps=24, step_size=0.3, lam=lam, schedule=sched, batch_size=B,
                                    log_every=4)) for lam in (0.0, 2.0)]
    jobs.append((parameter_server, dict(workload=W, n_steps=30, step_size=0.3, batch_size=B, log_every=10,
                                        slowdown_s=[0.0, 0.02])))
    results = launch(run_jobs, 3, jobs, rpc=True, timeout_s=240)
    return sched, results


def test_rpc_parameter_server_equals_the_simulation(rpc_runs):
    sched, results = rpc_runs
    for i, lam in enumerate((0.0, 2.0)):
        tr = results[0][i]
        sim = simulate_async_sgd(W, sched, 2, 0.3, lam=lam, batch_size=B, log_every=4)
        torch.testing.assert_close(tr.x_final, sim.x_final, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(tr.f, sim.f, rtol=1e-12)
        np.testing.assert_array_equal(tr.info["staleness"], sim.info["staleness"])
        assert results[1][i] + results[2][i] == 24  # gradients pushed by the two workers
    assert not torch.allclose(results[0][0].x_final, results[0][1].x_final)  # the correction changes the run


def test_rpc_asynchronous_mode_with_a_slow_worker(rpc_runs):
    _, results = rpc_runs
    tr = results[0][2]
    fast, slow = results[1][2], results[2][2]
    assert tr.iteration[-1] == 30 and fast > slow  # the fast worker pushed more updates
    assert tr.f[-1] < tr.f[0] and np.all(np.diff(tr.info["seconds"]) >= 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ddp_on_nccl_equals_single_process_sgd():
    n = min(2, torch.cuda.device_count())
    tr = launch(ddp_sgd, n, W, STEPS, ETA, B, "allreduce", None, 0.0, 0, 5, None, "cuda", backend="nccl",
                timeout_s=240)[0]
    ref = sgd_reference(W.to("cuda:0"), STEPS, ETA, B, world_size=n, log_every=5)
    torch.testing.assert_close(tr.x_final.cpu(), ref.x_final.cpu(), rtol=1e-10, atol=1e-12)
