"""Chapter 6, distributed and communication-efficient training on ``torch.distributed``.

Real worker processes (gloo on CPU, NCCL on GPUs), launched by :func:`launch.launch` on one machine or by
``torchrun`` on a cluster. Modules: ``launch`` (process groups), ``workload`` (data, model, log), ``ddp``
(synchronous data-parallel SGD), ``compression`` (operators, error feedback, DDP comm hooks counting bytes),
``local_sgd`` (local and post-local SGD with torch's model averaging), ``async_sgd`` (parameter server on
``torch.distributed.rpc``, stale gradients, DC-ASGD, and its deterministic simulation), ``diloco`` (H local
steps, then an outer Nesterov step on the averaged update), ``study_methods`` (the same operators on M workers
simulated in one process, for the experiment harness: comparisons at equal bytes).
"""
from .launch import free_port, init_from_env, launch
from .workload import Workload, digits_workload

__all__ = ["launch", "free_port", "init_from_env", "Workload", "digits_workload"]
