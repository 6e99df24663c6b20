"""nbgrader's kernel without its fixed waits: ready when the kernel says so, reaped as soon as it has died.

Every submission that ``course autograde`` grades starts one kernel in nbgrader and kills it when the
notebook has run. jupyter_client 8 spends fixed sleeps on both ends, time in which neither the kernel nor
nbgrader does anything (measured on hw00, ``benchmarks/README.md``, third and fourth rounds):

* ``wait_for_ready``, after the kernel's ``kernel_info_reply``, waits 0.2 s for an IOPub message to show
  that IOPub is connected, and then *always* waits another 0.2 s of silence to "flush" IOPub; when the
  first IOPub wait comes back empty (the subscription was not connected yet) it asks again, so one start
  costs 0.2-0.4 s of waiting;
* ``shutdown_kernel(now=True)`` sends SIGKILL and then polls every 0.1 s whether the process is gone,
  which it never is at the first poll: 0.1 s more.

:class:`PromptKernelClient` keeps the protocol and drops the fixed waits. The kernel publishes ``status:
busy`` and ``status: idle`` on IOPub around every request it handles, so the ``idle`` whose parent is one
of our ``kernel_info_request`` messages is the proof that IOPub is connected (the check jupyter_client
makes) and, IOPub being ordered, that everything before it has been read (the flush). It waits for that
message with a patience that starts at 20 ms and doubles up to 1 s before it asks again; messages of a
repeated request that arrive later have another parent, which nbclient ignores like jupyter_client's own
leftovers. :class:`PromptKernelManager` polls a killed kernel after 1 ms, then 2, 4 ... up to the 0.1 s
jupyter_client uses. :class:`PromptExecute` is nbgrader's ``Execute`` preprocessor with this manager;
:func:`autograde_preprocessors` is nbgrader's own list with it in ``Execute``'s place, for the scratch
course's ``c.Autograde.autograde_preprocessors``. Nothing else changes: the same kernel, the same
timeouts, the same messages.
"""
from __future__ import annotations

import asyncio
import time
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute
from traitlets import DottedObjectName, Type

__all__ = ["PromptKernelClient", "PromptKernelManager", "PromptExecute", "autograde_preprocessors"]


class PromptKernelClient(AsyncKernelClient):
    """An ``AsyncKernelClient`` whose ``wait_for_ready`` returns when IOPub shows the kernel is ready."""

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        """Ask ``kernel_info`` until the reply and the matching IOPub ``idle`` have both arrived.

        Args:
            timeout: seconds before ``RuntimeError`` (None: no limit), as in jupyter_client.
        Raises:
            RuntimeError: the kernel died or did not answer within ``timeout``.
        """
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        asked: set[str] = set()
        patience = 0.02

        def reply(msg):
            return msg["msg_type"] == "kernel_info_reply" and msg["parent_header"].get("msg_id") in asked

        def idle(msg):
            return (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
                    and msg["parent_header"].get("msg_id") in asked)

        while True:
            asked.add(self.kernel_info())
            info = await _first(self.shell_channel, min(1.0, max(0.0, deadline - time.monotonic())), reply)
            if info is not None and await _first(self.iopub_channel, patience, idle) is not None:
                self._handle_kernel_info_reply(info)
                return
            if info is not None:
                patience = min(2 * patience, 1.0)  # IOPub not connected yet, or a loaded machine: ask again
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError("Kernel didn't respond in %d seconds" % timeout)

    wait_for_ready = _async_wait_for_ready


async def _first(channel, wait: float, wanted) -> dict | None:
    """The first message on ``channel`` within ``wait`` s for which ``wanted(msg)`` (reading those before), or None."""
    end = time.monotonic() + wait
    while True:
        try:
            msg = await channel.get_msg(timeout=max(0.0, end - time.monotonic()))
        except Empty:
            return None
        if wanted(msg):
            return msg


class PromptKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` with :class:`PromptKernelClient` that reaps a killed kernel without a 0.1 s poll."""

    client_class = DottedObjectName("course_lib.grading.prompt_kernel.PromptKernelClient", config=True)
    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient, config=True)

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        """Return once the kernel process has ended, polling after 1, 2, 4 ... ms up to ``pollinterval``."""
        step = 0.001
        while await self._async_is_alive():
            await asyncio.sleep(step)
            step = min(2 * step, pollinterval)


class PromptExecute(Execute):
    """nbgrader's ``Execute`` preprocessor (config section ``Execute`` applies) on :class:`PromptKernelManager`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", PromptKernelManager)
        super().__init__(*args, **kwargs)


def autograde_preprocessors() -> list:
    """nbgrader's default ``Autograde.autograde_preprocessors`` with :class:`PromptExecute` for ``Execute``.

    Returns:
        The list for ``c.Autograde.autograde_preprocessors`` (raises if nbgrader's default has no ``Execute``).
    """
    from nbgrader.converters.autograde import Autograde

    default = list(Autograde.class_traits()["autograde_preprocessors"].default())
    if Execute not in default:
        raise RuntimeError("nbgrader's Autograde.autograde_preprocessors has no Execute to replace")
    return [PromptExecute if p is Execute else p for p in default]
