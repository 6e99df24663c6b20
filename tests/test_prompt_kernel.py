"""The prompt kernel handshake of the scratch nbgrader (course_lib.grading.prompt_kernel), on real kernels."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest
import zmq
from jupyter_client.manager import AsyncKernelManager
from nbgrader.converters.autograde import Autograde
from nbgrader.preprocessors import Execute
from traitlets.config import Config

from course_lib.grading import pipeline
from course_lib.grading.prompt_kernel import (PromptExecute, PromptKernelClient, PromptKernelManager,
                                              autograde_preprocessors)

QUIET = ["--IPKernelApp.log_level=ERROR"]


async def _run(km: AsyncKernelManager, code: str) -> tuple[str, str, bool]:
    """Start ``km``'s kernel, wait until ready, run ``code``; (status, its stdout, alive after the kill)."""
    await km.start_kernel(extra_arguments=QUIET)
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        out: list[str] = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        reply = await kc.execute_interactive(code, timeout=30, output_hook=hook)
        status = reply["content"]["status"]
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    return status, "".join(out), await km.is_alive()  # the kernel may flush stdout in one message or more


def test_prompt_client_runs_code_like_jupyter_clients_own_and_the_kernel_is_gone_after_the_kill():
    code = "import sys\nprint(6 * 7)\nprint(sys.version_info[:2])"
    prompt = PromptKernelManager(kernel_name="python3")
    assert isinstance(prompt.client(), PromptKernelClient)
    got = asyncio.run(_run(prompt, code))
    stock = asyncio.run(_run(AsyncKernelManager(kernel_name="python3"), code))
    assert got == stock == ("ok", f"42\n{tuple(sys.version_info[:2])}\n", False)


def test_a_repeated_handshake_leaves_nothing_that_reaches_the_first_execution(monkeypatch):
    """The first IOPub wait comes back empty (as when the subscription was not connected yet): the client asks
    again, and the later requests' messages, still queued when it is ready, never reach the code's output."""
    from course_lib.grading import prompt_kernel

    real, calls = prompt_kernel._first, []

    async def first(channel, wait, wanted):
        calls.append("iopub" if channel.socket.type == zmq.SUB else "shell")
        if calls[-1] == "iopub" and calls.count("iopub") == 1:
            return None  # nothing read: the first request's busy/idle stay queued
        return await real(channel, wait, wanted)

    monkeypatch.setattr(prompt_kernel, "_first", first)
    got = asyncio.run(_run(PromptKernelManager(kernel_name="python3"), "print('only this')"))
    # asked again after the empty wait; on a loaded machine the second request's idle may also miss its (doubled)
    # patience, and the client asks a third time: the same protocol, one more round
    assert calls[:4] == ["shell", "iopub", "shell", "iopub"]
    assert calls.count("shell") == calls.count("iopub") >= 2
    assert got == ("ok", "only this\n", False)


def test_a_kernel_that_dies_before_it_is_ready_is_reported():
    async def died():
        km = PromptKernelManager(kernel_name="python3")
        await km.start_kernel(extra_arguments=QUIET)
        kc = km.client()
        kc.start_channels()
        try:
            km.provisioner.process.kill()
            km.provisioner.process.wait()
            with pytest.raises(RuntimeError, match="died"):
                await kc.wait_for_ready(timeout=30)
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    asyncio.run(died())


def test_a_kernel_that_never_answers_times_out(tmp_path, monkeypatch):
    """A kernel spec whose process lives but never speaks the protocol: RuntimeError after ``timeout``."""
    spec = tmp_path / "kernels" / "mute"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", "import time; time.sleep(120)", "{connection_file}"],
        "display_name": "mute", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))

    async def mute():
        km = PromptKernelManager(kernel_name="mute")
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            with pytest.raises(RuntimeError, match="didn't respond in 2 seconds"):
                await kc.wait_for_ready(timeout=2)
            assert await km.is_alive()
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
        assert not await km.is_alive()

    asyncio.run(mute())


def test_the_scratch_course_runs_nbgraders_own_preprocessors_with_prompt_execute(tmp_path):
    default = list(Autograde.class_traits()["autograde_preprocessors"].default())
    assert autograde_preprocessors() == [PromptExecute if p is Execute else p for p in default]
    assert autograde_preprocessors().count(PromptExecute) == 1

    text = pipeline._scratch_config(tmp_path, "course101", cell_timeout=17)
    namespace = {"get_config": Config}
    exec(compile(text, str(tmp_path / "nbgrader_config.py"), "exec"), namespace)  # noqa: S102 - our own file
    config = namespace["c"]
    assert Autograde(config=config).autograde_preprocessors == autograde_preprocessors()
    execute = PromptExecute(config=config)  # the Execute section applies to the subclass
    assert execute.kernel_manager_class is PromptKernelManager
    assert (execute.timeout, execute.shutdown_kernel) == (17, "immediate")


@pytest.mark.slow
def test_a_scratch_configuration_that_does_not_load_stops_the_run_before_any_grading(monkeypatch, tmp_path):
    """nbgrader itself would log the error and grade with stock settings; autograde refuses first."""
    from coursedir import make_course, source_nb, submit

    from course_lib.validation import CourseError

    pipeline._require_scratch_config(30)  # the real one loads
    monkeypatch.setattr(pipeline, "_scratch_config",
                        lambda scratch, course_id, cell_timeout: "c = get_config()\nc.Autograde.x = missing_name\n")
    with pytest.raises(CourseError, match="does not load .NameError: name 'missing_name'.*make install"):
        pipeline._require_scratch_config(30)
    hw = "hw00_preliminaries"
    course = make_course(tmp_path / "course", [hw])
    submit(course, "alice", hw, source_nb(hw))
    with pytest.raises(CourseError, match="does not load"):
        pipeline.autograde(course, hw)
    assert not list(course.glob("autograded/*/*/.course_graded.json"))  # nothing was graded
