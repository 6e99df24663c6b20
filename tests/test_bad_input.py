"""The library refuses bad input: every public module, one clear error naming the argument.

Each case calls a public function with one bad argument and asserts the exception type and that the
message names the argument (``match``). The classes of bad input: values outside their domain
(probabilities, confidence levels, negative sizes and constants), None/strings/complex numbers where
reals are expected, NaN inside parameters, non-integer dimensions, arrays of the wrong length or
backend, objects that are not problems/sets/environments/optimizers, negative seeds. The tests after
the table check the API traps of issue 16: step-size schedules, ``kl_gaussian``'s spreads,
``admm_lasso``'s rho, ``frank_wolfe(tol=0)`` and the divergence message when f(x0) is NaN.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from course_lib import admm, backend as be, certify as cf, convex as cv, datasets as ds, nets, newton as nw
from course_lib import nonconvex as nc, online as ol, optimizers as op, pac_bayes as pb, plotting as pl
from course_lib import preliminaries as pre, problems as P, projections as pj, sparsity as sp, stochastic as st
from course_lib import trace as T, validation as V
from course_lib.validation import CourseError, DivergenceError

RNG0 = np.random.default_rng(0)
A = RNG0.standard_normal((20, 3))
B = RNG0.standard_normal(20)
LS = P.LeastSquares(A, B)
RIDGE = P.Ridge(A, B, lam=0.5)
Q = P.Quadratic(np.diag([1.0, 4.0]))
X2, X3 = np.zeros(2), np.zeros(3)
BALL = pj.Ball(1.0)
ENV = ol.stochastic_linear(BALL, 20, 2)
EXPERTS = ol.stochastic_experts([0.5, 0.4, 0.3], 20)
MLP = nets.MLP(A, np.r_[1, np.zeros(19)], hidden=(4,))
XT, YT = torch.zeros((10, 3)), torch.ones(10)


def f2(z):
    return (z**2).sum()


def trace_():
    return cv.gradient_descent(Q, np.ones(2), max_iter=3)


# (id, call, exception type, regex that names the argument)
CASES = [
    # backend
    ("RNG negative seed", lambda: be.RNG(-1), CourseError, r"seed must be an int >= 0"),
    ("RNG fractional seed", lambda: be.RNG(1.5), TypeError, r"seed must be an int"),
    ("RNG negative shape", lambda: be.RNG(0).normal((-1,)), CourseError, r"shape must be >= 0"),
    ("asarray None", lambda: be.asarray(None), CourseError, r"data must be numbers"),
    ("asarray strings", lambda: be.asarray(["a", "b"]), CourseError, r"data must be numbers"),
    ("asarray complex", lambda: be.asarray([1j, 2.0]), CourseError, r"data holds complex numbers"),
    ("hvp_autograd on NumPy", lambda: be.hvp_autograd(f2, X2, X2), TypeError, r"torch tensors x and v"),
    # validation
    ("check_positive None", lambda: V.check_positive(None, "lr"), CourseError, r"lr must be a real number"),
    ("check_positive string", lambda: V.check_positive("0.1", "lr"), CourseError, r"lr must be a real number"),
    ("check_positive complex", lambda: V.check_positive(1j, "lr"), CourseError, r"lr must be a real number"),
    ("check_in_range bool", lambda: V.check_in_range(True, "beta", 0, 1), CourseError, r"beta must be a real"),
    ("check_probability 1", lambda: V.check_probability(1.0, "delta"), CourseError, r"delta must lie in \(0, 1\)"),
    ("check_int fractional", lambda: V.check_int(2.5, "dim"), CourseError, r"dim must be an integer"),
    # problems
    ("LogReg labels {1, 2}", lambda: P.LogisticRegression(A, np.where(B > 0, 2.0, 1.0)), CourseError, r"y must hold labels in \{-1, \+1\}"),
    ("LogReg labels 0.5", lambda: P.LogisticRegression(A, np.full(20, 0.5)), CourseError, r"y must hold labels"),
    ("LogReg y wrong length", lambda: P.LogisticRegression(A, np.ones(19)), CourseError, r"y must have shape \(20,\)"),
    ("LogReg lam string", lambda: P.LogisticRegression(A, np.sign(B), lam="1"), CourseError, r"lam must be a real number"),
    ("LogReg lam complex", lambda: P.LogisticRegression(A, np.sign(B), lam=1j), CourseError, r"lam must be a real number"),
    ("Quadratic c None", lambda: P.Quadratic(np.eye(2), c=None), CourseError, r"c must be a real number"),
    ("Quadratic c NaN", lambda: P.Quadratic(np.eye(2), c=float("nan")), CourseError, r"c must be finite"),
    ("Quadratic.random seed -1", lambda: P.Quadratic.random(3, seed=-1), CourseError, r"seed must be an int >= 0"),
    ("Rosenbrock dim 2.7", lambda: P.Rosenbrock(2.7), CourseError, r"dim must be an integer"),
    ("Rosenbrock a NaN", lambda: P.Rosenbrock(a=float("nan")), CourseError, r"a must be finite"),
    ("grad_batch index out of range", lambda: LS.grad_batch(X3, [25]), CourseError, r"idx holds index 25, outside 0\.\.19"),
    ("grad_batch negative index", lambda: LS.grad_batch(X3, [-1]), CourseError, r"idx holds index -1"),
    ("grad_batch float index", lambda: LS.grad_batch(X3, [0.5]), CourseError, r"idx must be an integer index array"),
    # trace
    ("Recorder max_iter -1", lambda: T.Recorder("m", X2, -1), CourseError, r"max_iter must be >= 0"),
    ("Recorder tol -1", lambda: T.Recorder("m", X2, 10, tol=-1), CourseError, r"tol must be >= 0"),
    ("Recorder record_every 1.5", lambda: T.Recorder("m", X2, 10, record_every=1.5), CourseError, r"record_every must be an integer"),
    ("Recorder keep_x 'yes'", lambda: T.Recorder("m", X2, 10, keep_x="yes"), CourseError, r"keep_x must be True, False, 'auto'"),
    ("Recorder divergence_factor -1", lambda: T.Recorder("m", X2, 10, divergence_factor=-1), CourseError, r"divergence_factor must be > 0"),
    # preliminaries
    ("fd_gradient h -1", lambda: pre.fd_gradient(f2, X2, h=-1), CourseError, r"h must be > 0"),
    ("check_gradient rtol -1", lambda: pre.check_gradient(f2, lambda z: 2 * z, X2, rtol=-1), CourseError, r"rtol must be > 0"),
    ("check_gradient f not callable", lambda: pre.check_gradient(3, lambda z: 2 * z, X2), CourseError, r"f must be callable"),
    ("taylor negative steps", lambda: pre.taylor_remainders(f2, lambda z: 2 * z, X2, np.ones(2), hs=[-1, -0.1]), CourseError, r"hs must hold"),
    ("power_iteration tol -1", lambda: pre.power_iteration(lambda v: v, np.ones(2), tol=-1), CourseError, r"tol must be >= 0"),
    ("smoothness_constant x wrong length", lambda: pre.smoothness_constant(Q, X3), CourseError, r"x must have shape \(2,\)"),
    ("smoothness_constant not a problem", lambda: pre.smoothness_constant("q"), CourseError, r"problem must be a Problem"),
    # convex
    ("gradient_descent problem None", lambda: cv.gradient_descent(None, X2), CourseError, r"problem must be a Problem"),
    ("gradient_descent tol string", lambda: cv.gradient_descent(Q, X2, tol="a"), CourseError, r"tol must be a real number"),
    ("gradient_descent tol -1", lambda: cv.gradient_descent(Q, X2, tol=-1), CourseError, r"tol must be >= 0"),
    ("gradient_descent armijo t0 -1", lambda: cv.gradient_descent(Q, np.ones(2), step_size="armijo", t0=-1), CourseError, r"t0 must be > 0"),
    ("gradient_descent polyak f_star string", lambda: cv.gradient_descent(Q, X2, step_size="polyak", f_star="a"), CourseError, r"f_star must be a real"),
    ("heavy_ball momentum string", lambda: cv.heavy_ball(Q, X2, step_size=0.1, momentum="a"), CourseError, r"momentum must be a real"),
    ("heavy_ball unstable step", lambda: cv.heavy_ball(Q, X2, step_size=5.0, momentum=0.5), CourseError, r"step_size=5 is >= 3/L"),
    ("proximal_gradient prox not callable", lambda: cv.proximal_gradient(Q, X2, prox=3), CourseError, r"prox must be callable"),
    ("projected_gradient domain string", lambda: cv.projected_gradient(Q, X2, "ball"), CourseError, r"domain must be a convex set"),
    ("subgradient domain None-like", lambda: cv.subgradient_method(Q, X2, 0.1, domain=3), CourseError, r"domain must be a convex set"),
    ("frank_wolfe domain object", lambda: cv.frank_wolfe(Q, X2, object()), CourseError, r"domain must be a convex set .*lmo"),
    ("frank_wolfe tol -1", lambda: cv.frank_wolfe(Q, X2, BALL, tol=-1), CourseError, r"tol must be >= 0"),
    ("backtracking beta 1", lambda: cv.backtracking(f2, np.ones(2), 2.0, 2 * np.ones(2), beta=1), CourseError, r"beta must lie in \(0"),
    ("backtracking max_steps 0", lambda: cv.backtracking(f2, np.ones(2), 2.0, 2 * np.ones(2), max_steps=0), CourseError, r"max_steps must be >= 1"),
    ("Lasso alpha None", lambda: cv.Lasso(A, B, alpha=None), CourseError, r"alpha must be a real number"),
    # projections
    ("project_box lo > hi arrays", lambda: pj.project_box(X2, np.ones(2), np.zeros(2)), CourseError, r"The box is empty: lo > hi"),
    ("project_box lo None", lambda: pj.project_box(X2, None, 1.0), CourseError, r"lo must be a real number"),
    ("project_ball center wrong length", lambda: pj.project_ball(5 * np.ones(2), 1.0, np.zeros(3)), CourseError, r"center must have shape \(2,\)"),
    ("project_ball x list", lambda: pj.project_ball([1.0, 2.0]), CourseError, r"x must be an array"),
    ("prox_l1 v list", lambda: pj.prox_l1([1.0], 0.1), CourseError, r"v must be an array"),
    ("lmo_simplex radius -1", lambda: pj.lmo_simplex(np.ones(2), -1), CourseError, r"radius must be > 0"),
    ("Box dim 2.5", lambda: pj.Box(0, 1, 2.5), CourseError, r"dim must be an integer"),
    ("Box lo NaN", lambda: pj.Box(float("nan"), 1, 2), CourseError, r"lo must be finite"),
    ("Ball.contains tol -1", lambda: BALL.contains(X2, tol=-1), CourseError, r"tol must be >= 0"),
    # newton
    ("newton alpha 0.7", lambda: nw.newton(Q, X2, alpha=0.7), CourseError, r"alpha must lie in \(0"),
    ("newton without Hessian", lambda: nw.newton(nc.PLFunction(2), X2), CourseError, r"newton needs the Hessian"),
    ("newton_decrement H wrong shape", lambda: nw.newton_decrement(np.ones(2), np.eye(3)), CourseError, r"H must have shape \(2, 2\)"),
    ("AnalyticCenter c wrong length", lambda: nw.AnalyticCenter(np.eye(2), np.ones(2), np.ones(3)), CourseError, r"c must have shape \(2,\)"),
    ("AnalyticCenter.random m -1", lambda: nw.AnalyticCenter.random(m=-1), CourseError, r"m must be >= 1"),
    # admm
    ("admm_lasso mixed backends", lambda: admm.admm_lasso(torch.tensor(A), torch.tensor(B).numpy(), 0.1), CourseError, r"A: torch tensor.*b: NumPy"),
    ("admm_lasso tol -1", lambda: admm.admm_lasso(A, B, 0.1, tol=-1), CourseError, r"tol must be >= 0"),
    ("admm_lasso adapt_until -1", lambda: admm.admm_lasso(A, B, 0.1, adapt_until=-1), CourseError, r"adapt_until must be >= 0"),
    ("trend_filtering_objective lam -1", lambda: admm.trend_filtering_objective(np.ones(5), np.ones(5), -1), CourseError, r"lam must be >= 0"),
    ("trend_filtering_objective y wrong length", lambda: admm.trend_filtering_objective(np.ones(5), np.ones(4), 1.0), CourseError, r"y must have shape \(5,\)"),
    ("difference_matrix n 5.5", lambda: admm.difference_matrix(5.5), CourseError, r"n must be an integer"),
    # stochastic
    ("sgd on a Quadratic", lambda: st.sgd(Q, X2), CourseError, r"problem must be a finite sum for sgd .*L_max"),
    ("svrg on a Quadratic", lambda: st.svrg(Q, X2), CourseError, r"problem must be a finite sum for svrg"),
    ("gradient_variance on a Quadratic", lambda: st.gradient_variance(Q, X2), CourseError, r"problem must be a finite sum"),
    ("sgd seed -1", lambda: st.sgd(LS, X3, seed=-1, max_iter=2), CourseError, r"seed must be an int >= 0"),
    ("sgd schedule returning None", lambda: st.sgd(RIDGE, X3, step_size=lambda t: None, max_iter=5), CourseError, r"step_size\(1\) must be a real"),
    ("sgd negative schedule", lambda: st.sgd(RIDGE, X3, step_size=lambda t: -0.01, max_iter=5), CourseError, r"step_size\(1\) = -0.01 is negative"),
    ("run optimizer string", lambda: st.run(LS, X3, "adam"), CourseError, r"optimizer must be an Optimizer"),
    ("warmup schedule string", lambda: st.warmup("a", 5), CourseError, r"schedule must be a real number"),
    ("svrg_rate inner_steps 0", lambda: st.svrg_rate(1, 1, 0.1, 0), CourseError, r"inner_steps must be >= 1"),
    ("svrg_rate L -1", lambda: st.svrg_rate(-1, 1, 0.1, 10), CourseError, r"L must be > 0"),
    ("reddi optimizer string", lambda: st.reddi_counterexample("adam"), CourseError, r"optimizer must be an Optimizer"),
    # optimizers
    ("sgd lr string", lambda: op.sgd(lr="0.1"), CourseError, r"lr must be a real number"),
    ("adam eps None", lambda: op.adam(eps=None), CourseError, r"eps must be a real number"),
    ("update mixed NumPy/torch", lambda: op.sgd(lr=0.1).update(torch.ones(2, dtype=torch.float64), op.SGDState(0, None), np.ones(2)), CourseError, r"grad must match its parameter"),
    ("update wrong length", lambda: op.sgd(lr=0.1).update(np.ones(3), op.SGDState(0, None), np.ones(2)), CourseError, r"grad must match its parameter"),
    ("TorchOptimizer optimizer string", lambda: op.TorchOptimizer("adam", [torch.ones(2, requires_grad=True)]), CourseError, r"optimizer must be an Optimizer"),
    # online
    ("Sequence K None", lambda: ol.Sequence(None, np.ones((3, 2))), CourseError, r"K must be a convex set"),
    ("stochastic_linear noise -1", lambda: ol.stochastic_linear(BALL, 5, 2, noise=-1), CourseError, r"noise must be >= 0"),
    ("stochastic_linear mean NaN", lambda: ol.stochastic_linear(BALL, 5, 2, mean=[float("nan"), 0]), CourseError, r"mean contains 1 NaN"),
    ("stochastic_linear mean wrong length", lambda: ol.stochastic_linear(BALL, 5, 2, mean=[0, 0, 0]), CourseError, r"mean must have shape \(2,\)"),
    ("stochastic_experts means NaN", lambda: ol.stochastic_experts([0.5, float("nan")], 10), CourseError, r"means contains 1 NaN"),
    ("stochastic_experts seed -1", lambda: ol.stochastic_experts([0.5, 0.4], 10, seed=-1), CourseError, r"seed must be an int >= 0"),
    ("adaptive_experts N 2.5", lambda: ol.adaptive_experts(2.5), CourseError, r"N must be an integer"),
    ("adaptive_linear G NaN", lambda: ol.adaptive_linear(2, G=float("nan")), CourseError, r"G must be finite"),
    ("Adaptive rule not callable", lambda: ol.Adaptive(BALL, 2, 3, 1.0), CourseError, r"rule must be callable"),
    ("QuadraticLoss alpha -1", lambda: ol.QuadraticLoss(np.zeros(2), -1), CourseError, r"alpha must be > 0"),
    ("LinearLoss g None", lambda: ol.LinearLoss(None), CourseError, r"g must be an array"),
    ("ogd env None", lambda: ol.ogd(None, 5), CourseError, r"env must be an Environment"),
    ("hedge env string", lambda: ol.hedge("experts", 5), CourseError, r"env must be an Environment"),
    ("best_fixed no losses", lambda: ol.best_fixed(BALL, []), CourseError, r"losses is empty"),
    ("SampledLosses on a Quadratic", lambda: ol.SampledLosses(Q, BALL, 5), CourseError, r"problem must be a finite sum"),
    ("ogd_bound G -1", lambda: ol.ogd_bound(-1, 1, 10), CourseError, r"G must be > 0"),
    ("ogd_bound t -1", lambda: ol.ogd_bound(1, 1, -1), CourseError, r"t must hold round counts >= 1"),
    ("strongly_convex_bound alpha 0", lambda: ol.strongly_convex_bound(1, 0, 10), CourseError, r"alpha must be > 0"),
    ("hedge_bound eta -1", lambda: ol.hedge_bound(3, 10, eta=-1), CourseError, r"eta must be > 0"),
    ("hedge_bound N 0", lambda: ol.hedge_bound(0, 10), CourseError, r"N must be >= 1"),
    # nonconvex
    ("gd_stationarity_bound f0 < f_star", lambda: nc.gd_stationarity_bound(1.0, 0.0, 1.0, 10), CourseError, r"f0=0 is below f_star=1"),
    ("gd_stationarity_bound T NaN", lambda: nc.gd_stationarity_bound(1.0, 1.0, 0.0, float("nan")), CourseError, r"T must hold finite"),
    ("pl_rate_bound gap0 -1", lambda: nc.pl_rate_bound(1.0, 0.5, -1.0, 10), CourseError, r"gap0 must be >= 0"),
    ("pl_rate_bound k -1", lambda: nc.pl_rate_bound(1.0, 0.5, 1.0, -1), CourseError, r"k must hold finite"),
    ("pgd_parameters delta 2", lambda: nc.pgd_parameters(2, 1.0, 1.0, 0.1, 1.0, delta=2), CourseError, r"delta must lie in \(0, 1\)"),
    ("uniform_ball radius -1", lambda: nc.uniform_ball(be.RNG(0), 2, -1), CourseError, r"radius must be > 0"),
    ("uniform_ball rng int", lambda: nc.uniform_ball(0, 2, 1.0), CourseError, r"rng must be a course_lib.backend.RNG"),
    ("escape_time trace None", lambda: nc.escape_time(None, X2), CourseError, r"trace must be a Trace"),
    ("fd_hvp v wrong length", lambda: nc.fd_hvp(lambda z: z, X2, np.ones(3)), CourseError, r"v must have shape \(2,\)"),
    ("hvp v wrong length", lambda: nc.hvp(Q, X2, np.ones(3)), CourseError, r"v must have shape \(2,\)"),
    ("top_hessian_eigenvalue x wrong length", lambda: nc.top_hessian_eigenvalue(Q, X3), CourseError, r"x must have shape \(2,\)"),
    ("step_size_sweep string", lambda: nc.step_size_sweep(Q, X2, ["a"], max_iter=3), CourseError, r"step_sizes\[0\] must be a real"),
    ("sam_perturbation g wrong length", lambda: nc.sam_perturbation(np.ones(3), X2, 0.1), CourseError, r"g must have shape \(2,\)"),
    ("sam eta -1", lambda: nc.sam(Q, X2, adaptive=True, eta=-1), CourseError, r"eta must be > 0"),
    # sparsity
    ("hard_threshold s 1.5", lambda: sp.hard_threshold(np.ones(3), 1.5), CourseError, r"s must be an integer"),
    ("hard_threshold mask wrong length", lambda: sp.hard_threshold(np.ones(3), 1, np.ones(2, dtype=bool)), CourseError, r"mask must have shape \(3,\)"),
    ("hard_threshold float mask", lambda: sp.hard_threshold(np.ones(3), 1, np.ones(3)), CourseError, r"mask must be a boolean array"),
    ("iht s > dim", lambda: sp.iht(LS, X3, 5), CourseError, r"s=5 exceeds"),
    ("prune_layer on least squares", lambda: sp.prune_layer(LS, X3, 0, 0.5), CourseError, r"problem must be a network problem"),
    ("sparsity_of x list", lambda: sp.sparsity_of([0.0, 1.0]), CourseError, r"x must be an array"),
    # nets
    ("MatrixFactorization.random m 2.5", lambda: nets.MatrixFactorization.random(2.5, 3, 1), CourseError, r"m must be an integer"),
    ("MLP hidden int", lambda: nets.MLP(A, np.zeros(20), hidden=32), CourseError, r"hidden must be a tuple"),
    ("MLP n_classes too small", lambda: nets.MLP(A, np.r_[np.arange(5), np.zeros(15)], n_classes=2), CourseError, r"n_classes=2"),
    ("MLP weight_mask layer string", lambda: MLP.weight_mask("0"), CourseError, r"layer must be in"),
    ("noisy_labels n_classes 1", lambda: nets.noisy_labels(np.zeros(5), 0.5, 1), CourseError, r"n_classes must be >= 2"),
    ("noisy_labels fractional labels", lambda: nets.noisy_labels(np.array([0.5, 1.0]), 0.5, 3), CourseError, r"y must hold integer class labels"),
    ("load_digits label_noise -1", lambda: nets.load_digits(label_noise=-1), CourseError, r"label_noise must lie in"),
    ("train seed -1", lambda: nets.train(MLP, MLP.init(), epochs=1, seed=-1), CourseError, r"seed must be an int >= 0"),
    ("train test not a pair", lambda: nets.train(MLP, MLP.init(), epochs=1, test=(A,)), CourseError, r"test must be a pair"),
    ("train on a Quadratic", lambda: nets.train(Q, X2, epochs=1), CourseError, r"problem must be a classification"),
    ("accuracy y wrong length", lambda: nets.accuracy(MLP, MLP.init(), A, np.zeros(3)), CourseError, r"y must hold one label per row"),
    ("landscape_1d direction wrong length", lambda: nets.landscape_1d(f2, X2, np.ones(3), [0, 1]), CourseError, r"direction must have shape \(2,\)"),
    ("random_direction on least squares", lambda: nets.random_direction(LS, X3), CourseError, r"problem must be a course_lib.nets.MLP"),
    # pac_bayes
    ("kl_bernoulli q string", lambda: pb.kl_bernoulli("0.1", 0.5), CourseError, r"q must be a real number"),
    ("kl_bernoulli q complex", lambda: pb.kl_bernoulli(1j, 0.5), CourseError, r"q must be a real number"),
    ("kl_bernoulli q 1.5", lambda: pb.kl_bernoulli(1.5, 0.5), CourseError, r"q must lie in \[0.0, 1.0\]"),
    ("kl_bernoulli mixed backends", lambda: pb.kl_bernoulli(np.array([0.1]), torch.tensor([0.5])), CourseError, r"q: NumPy array.*p: torch tensor"),
    ("kl_bernoulli lengths", lambda: pb.kl_bernoulli(np.array([0.1, 0.2]), np.full(3, 0.5)), CourseError, r"q: \(2,\), p: \(3,\)"),
    ("kl_gaussian lengths", lambda: pb.kl_gaussian(np.zeros(2), np.zeros(3), var_q=np.ones(2), var_p=1.0), CourseError, r"mu_p: \(3,\)"),
    ("kl_gaussian std_q negative", lambda: pb.kl_gaussian(np.zeros(2), np.zeros(2), std_q=-1.0, var_p=1.0), CourseError, r"std_q must lie in"),
    ("kl_inv_upper c NaN", lambda: pb.kl_inv_upper(0.1, float("nan")), CourseError, r"c must lie in"),
    ("mcallester delta 1", lambda: pb.mcallester_bound(0.1, 1.0, 100, 1.0), CourseError, r"delta must lie in \(0, 1\)"),
    ("mcallester delta string", lambda: pb.mcallester_bound(0.1, 1.0, 100, "0.05"), CourseError, r"delta must be a real number"),
    ("mcallester delta None", lambda: pb.mcallester_bound(0.1, 1.0, 100, None), CourseError, r"delta must be a real number"),
    ("mcallester n 100.5", lambda: pb.mcallester_bound(0.1, 1.0, 100.5, 0.05), CourseError, r"n must be an integer"),
    ("mcallester kl NaN", lambda: pb.mcallester_bound(0.1, float("nan"), 100, 0.05), CourseError, r"kl must lie in"),
    ("catoni C None", lambda: pb.catoni_bound(0.1, 1.0, 100, 0.05, None), CourseError, r"C must be a real number"),
    ("grid_bound bound not callable", lambda: pb.grid_bound(3, [{"C": 1.0}], 0.05, risk=0.1, kl=1.0, n=100), CourseError, r"bound must be callable"),
    ("grid_bound candidates not dicts", lambda: pb.grid_bound(pb.catoni_bound, [1.0], 0.05, risk=0.1, kl=1.0, n=100), CourseError, r"candidates must be keyword dicts"),
    ("kl_certificate delta_mc 2", lambda: pb.kl_certificate(0.1, 100, 1.0, 100, delta_mc=2.0), CourseError, r"delta_mc must lie in \(0, 1\)"),
    ("kl_certificate delta_mc 0", lambda: pb.kl_certificate(0.1, 100, 1.0, 100, delta_mc=0.0), CourseError, r"delta_mc must lie in \(0, 1\)"),
    ("kl_certificate delta + delta_mc >= 1", lambda: pb.kl_certificate(0.1, 100, 1.0, 100, delta=0.6, delta_mc=0.6), CourseError, r"delta \+ delta_mc = 1.2 must be < 1"),
    ("kl_certificate kl None", lambda: pb.kl_certificate(0.1, 100, None, 100), CourseError, r"kl must be a real number"),
    # certify
    ("n_params sizes int", lambda: cf.n_params(5), CourseError, r"sizes must be a tuple"),
    ("n_params negative width", lambda: cf.n_params((3, -1)), CourseError, r"sizes\[1\] must be >= 1"),
    ("init_weights seed -1", lambda: cf.init_weights((3, 1), seed=-1), CourseError, r"seed must be an int >= 0"),
    ("forward on NumPy", lambda: cf.forward(np.zeros(4), np.zeros((2, 3)), (3, 1)), CourseError, r"w and X must be torch tensors"),
    ("forward X wrong width", lambda: cf.forward(torch.zeros(4), torch.zeros((2, 5)), (3, 1)), CourseError, r"X must have shape \('any', 3\)"),
    ("error_rate y wrong length", lambda: cf.error_rate(torch.zeros(4), torch.zeros((2, 3)), torch.ones(3), (3, 1)), CourseError, r"y must have shape \(2,\)"),
    ("train_mlp labels {0, 1}", lambda: cf.train_mlp(XT, torch.zeros(10), (3, 1), epochs=1), CourseError, r"y must hold labels in \{-1, \+1\}.*2 \* y - 1"),
    ("train_mlp X NumPy", lambda: cf.train_mlp(np.zeros((10, 3)), YT, (3, 1), epochs=1), CourseError, r"X must be a torch tensor"),
    ("optimize_posterior delta 2", lambda: cf.optimize_posterior(torch.zeros(4), torch.zeros(4), XT, YT, (3, 1), delta=2.0, steps=1), CourseError, r"delta must lie in \(0, 1\)"),
    ("optimize_posterior n_priors 0", lambda: cf.optimize_posterior(torch.zeros(4), torch.zeros(4), XT, YT, (3, 1), n_priors=0, steps=1), CourseError, r"n_priors must be >= 1"),
    ("stochastic_error negative variance", lambda: cf.stochastic_error(torch.zeros(4), -torch.ones(4), XT, YT, (3, 1), m=2), CourseError, r"var must hold positive variances"),
    ("stochastic_error chunk 0", lambda: cf.stochastic_error(torch.zeros(4), torch.ones(4), XT, YT, (3, 1), m=2, chunk=0), CourseError, r"chunk must be >= 1"),
    ("certify_posterior prior_grid negative", lambda: cf.certify_posterior(torch.zeros(4), torch.ones(4), torch.zeros(4), XT, YT, (3, 1), prior_grid=[-1.0], m=2), CourseError, r"prior_grid\[0\] must be > 0"),
    ("run_experiment delta_mc 2", lambda: cf.run_experiment(delta_mc=2.0), CourseError, r"delta_mc must lie in \(0, 1\)"),
    # plotting
    ("plot_convergence quantity", lambda: pl.plot_convergence(trace_(), quantity="loss"), CourseError, r"quantity must be 'gap'"),
    ("plot_convergence x_axis", lambda: pl.plot_convergence(trace_(), f_star=0.0, x_axis="epoch"), CourseError, r"x_axis must be 'iteration'"),
    ("plot_convergence traces string", lambda: pl.plot_convergence("tr", f_star=0.0), CourseError, r"traces\[0\] must be a Trace"),
    ("plot_convergence labels too short", lambda: pl.plot_convergence([trace_(), trace_()], f_star=0.0, labels=["a"]), CourseError, r"labels has 1 entries for 2 curves"),
    ("plot_convergence f_star string", lambda: pl.plot_convergence(trace_(), f_star="a"), CourseError, r"f_star must be a real"),
    ("plot_rate bound wrong length", lambda: pl.plot_rate(None, [1, 2, 3], [1, 2], "x"), CourseError, r"bound must have one value per k"),
    ("plot_contour reversed xlim", lambda: pl.plot_contour(Q, xlim=(1, -1)), CourseError, r"xlim must be a pair"),
    ("plot_contour n_grid 1", lambda: pl.plot_contour(Q, n_grid=1), CourseError, r"n_grid must be >= 2"),
    ("plot_curves list", lambda: pl.plot_curves([1, 2]), CourseError, r"curves must be a dict"),
    # datasets
    ("random_spd dim 2.5", lambda: ds.random_spd(2.5), CourseError, r"dim must be an integer"),
    ("random_spd seed -1", lambda: ds.random_spd(3, seed=-1), CourseError, r"seed must be an int >= 0"),
    ("make_regression cond 0.5", lambda: ds.make_regression(cond=0.5), CourseError, r"cond must be >= 1"),
    ("make_regression noise NaN", lambda: ds.make_regression(noise=float("nan")), CourseError, r"noise must be finite"),
    ("make_classification flip None", lambda: ds.make_classification(flip=None), CourseError, r"flip must be a real number"),
    ("make_classification flip string", lambda: ds.make_classification(flip="0.1"), CourseError, r"flip must be a real number"),
    ("train_test_split lengths", lambda: ds.train_test_split(A, B[:5]), CourseError, r"y must have one entry per row of X"),
    ("train_test_split fraction None", lambda: ds.train_test_split(A, B, None), CourseError, r"test_fraction must be a real"),
    ("shakespeare_lines plays string", lambda: ds.shakespeare_lines("hamlet"), CourseError, r"plays must be a list"),
    ("shakespeare_lines max_lines 0", lambda: ds.shakespeare_lines(["tempest"], max_lines_per_play=0), CourseError, r"max_lines_per_play must be >= 1"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_the_table_covers_every_public_module():
    modules = {"backend", "validation", "problems", "trace", "preliminaries", "convex", "projections", "newton",
               "admm", "stochastic", "optimizers", "online", "nonconvex", "sparsity", "nets", "pac_bayes",
               "certify", "plotting", "datasets"}
    import inspect
    src = inspect.getsource(inspect.getmodule(test_the_table_covers_every_public_module))
    seen = {m for m in modules if f"# {m}\n" in src}
    assert seen == modules
    assert len(CASES) >= 80


# -- the API traps of issue 16 ---------------------------------------------------------------------
def _ridge():
    A, b, _ = ds.make_regression(n=200, dim=10, seed=0)
    return P.Ridge(A, b, lam=0.001)


def test_a_schedule_starting_above_two_over_L_max_is_refused_with_a_hint():
    p = _ridge()
    textbook = st.inverse_time(2 / p.mu, offset=1)        # eta_t = 2 / (mu (t + 1)): eta_1 = 1/mu >> 2/L_max
    assert textbook(1) > 2 / p.L_max
    with pytest.raises(CourseError, match=r"step_size\(1\) = .* is >= 2/L_max .*offset=t0\) with t0 >= L_max / mu"):
        st.sgd(p, p.zeros(), step_size=textbook, max_iter=100)
    # what the check protects against: unchecked, the first updates blow f up by three orders of magnitude
    tr = st.sgd(p, p.zeros(), step_size=textbook, max_iter=200, seed=0, check_step=False, on_divergence="stop")
    assert np.nanmax(tr.f) > 1000 * tr.f[0]
    # the hint's offset starts below 2/L_max, is accepted and never rises above f(x0)
    hinted = st.inverse_time(2 / p.mu, offset=p.L_max / p.mu)
    assert hinted(1) < 2 / p.L_max
    ok = st.sgd(p, p.zeros(), step_size=hinted, max_iter=200, seed=0)
    assert np.nanmax(ok.f) <= ok.f[0]
    # a warmup that ramps past 2/L_max later is caught too (the whole horizon is checked, not only t = 1)
    with pytest.raises(CourseError, match=r"step_size\(10\)"):
        st.sgd(p, p.zeros(), step_size=st.warmup(st.constant(0.5), 10), max_iter=50)


def test_kl_gaussian_spreads_are_named_so_a_standard_deviation_cannot_pass_as_a_variance():
    rng = np.random.default_rng(3)
    mq, mp = rng.standard_normal(6), rng.standard_normal(6)
    sq, sp_ = rng.uniform(0.2, 2.0, 6), rng.uniform(0.2, 2.0, 6)
    t = [torch.tensor(a, dtype=torch.float64) for a in (mq, sq, mp, sp_)]
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(t[0], t[1]),
                                            torch.distributions.Normal(t[2], t[3])).sum().item()
    assert pb.kl_gaussian(mq, mp, std_q=sq, std_p=sp_) == pytest.approx(ref, rel=1e-12)
    assert pb.kl_gaussian(mq, mp, var_q=sq**2, var_p=sp_**2) == pytest.approx(ref, rel=1e-12)
    assert pb.kl_gaussian(mq, mp, std_q=sq, var_p=sp_**2) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(TypeError, match=r"by keyword.*var_q=\.\.\., var_p=\.\.\..*std_q="):
        pb.kl_gaussian(mq, sq, mp, sp_)                       # the old positional habit
    with pytest.raises(TypeError, match=r"exactly one of var_q= .* or std_q="):
        pb.kl_gaussian(mq, mp, var_q=sq, std_q=sq, var_p=1.0)
    with pytest.raises(TypeError, match=r"exactly one of var_p="):
        pb.kl_gaussian(mq, mp, var_q=sq)


@pytest.mark.parametrize("standardize_y,alpha", [(False, 0.01), (False, 1.0), (True, 0.01), (True, 0.1)])
def test_admm_lasso_default_rho_converges_on_standardized_diabetes(standardize_y, alpha):
    from sklearn.linear_model import Lasso

    X, y = ds.load_dataset("diabetes")          # features standardized
    if standardize_y:
        y = (y - y.mean()) / y.std()
    tr = admm.admm_lasso(X, y, alpha, max_iter=5000)
    assert tr.status == "converged" and tr.n_iter < 500
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y).coef_
    np.testing.assert_allclose(tr.x_final, ref, atol=1e-6 * max(1.0, np.abs(ref).max()))


def test_admm_lasso_residual_balancing_fixes_an_off_scale_rho():
    X, y = ds.load_dataset("diabetes")          # raw targets (std ~ 77): rho = 1 is far off their scale
    fixed = admm.admm_lasso(X, y, 0.01, max_iter=5000, adaptive_rho=False)
    adaptive = admm.admm_lasso(X, y, 0.01, max_iter=5000)
    assert fixed.status == adaptive.status == "converged"
    assert fixed.n_iter > 10 * adaptive.n_iter
    assert adaptive.info["rho"][-1] < 0.01     # balancing moved rho down by more than 2 decades
    np.testing.assert_allclose(adaptive.x_final, fixed.x_final, atol=1e-6)


def test_frank_wolfe_tol_zero_means_off():
    simplex = pj.Simplex()
    q = P.Quadratic(np.eye(3), np.array([5.0, 0.0, 0.0]))   # minimiser over the simplex: the vertex e_1
    x0 = np.array([1.0, 0.0, 0.0])                           # start there: the Frank-Wolfe gap is exactly 0
    off = cv.frank_wolfe(q, x0, simplex, max_iter=25)
    assert off.status == "max_iter" and off.n_iter == 25 and off.info["gap"][0] == 0.0
    on = cv.frank_wolfe(q, x0, simplex, max_iter=25, tol=1e-12)
    assert on.status == "converged" and on.n_iter == 0


class _NaNAtStart(P.Problem):
    name = "nan_at_start"

    def __init__(self):
        self.dim, self.L, self.mu = 2, 1.0, 1.0

    def value(self, x):
        return float("nan") * (x * x).sum()

    def grad(self, x):
        return x


def test_nan_objective_at_x0_is_reported_not_crashed_on():
    with pytest.raises(DivergenceError, match=r"cannot start: f\(x0\) = nan, .*starting point") as err:
        cv.gradient_descent(_NaNAtStart(), np.ones(2))
    assert err.value.iteration == 0 and err.value.trace.status == "diverged"
    tr = cv.gradient_descent(_NaNAtStart(), np.ones(2), on_divergence="stop")
    assert tr.status == "diverged" and "f(x0) = nan" in tr.message
    # a NaN appearing later keeps the usual message, with f(x0) formatted
    rec = T.Recorder("m", np.ones(2), 5, params={"step_size": 0.1}, on_divergence="stop")
    rec.record(0, np.ones(2), f=1.0)
    rec.record(1, np.ones(2), f=float("nan"))
    assert "f(x0) = 1" in rec.message and "smaller step size than 0.1" in rec.message
