"""One machine, in a real browser: Debian's Chromium (Playwright) on JupyterLab started as `make lab` starts it.

Journey: `course release` publishes hw00 to the course exchange; formgrader loads and lists it; the student's
Assignment List shows it, fetches it; a cell is edited in the notebook and saved; the student submits; `course
collect` + `course autograde` grade it (trusted grading); `course feedback --release` returns feedback, which the
student fetches from the Assignment List. Screenshots go to the test's tmp dir (printed at the end) and, when
COURSE_SCREENSHOTS names a folder, are copied there.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.coursedir import make_course
from tests.services import launch_chromium, require, require_chromium, start_on_free_port, stop

HW = "hw00_preliminaries"
TOKEN = "browser-test-token"
ANSWER = "return -(X.T @ (y * np.exp(-np.logaddexp(0.0, y * (X @ w))))) / X.shape[0] + lam * w"

pytestmark = pytest.mark.slow


def course_cli(course, *args, env=None, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "course_lib.cli", *args, "--course-dir", str(course)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def open_panel(page, item: str):
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def test_student_and_ta_journey_in_chromium(tmp_path):
    require_chromium()
    try:
        import playwright.sync_api as playwright_api
    except ImportError:
        playwright_api = None
    require(playwright_api is not None, "the playwright Python package (the service extra)")
    course = make_course(tmp_path / "course", [HW])
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), JUPYTER_TOKEN=TOKEN, JUPYTER_CONFIG_DIR=str(home / ".jupyter"))
    course_cli(course, "release", HW, env=env)
    assert (course / "exchange" / "optimization-for-ai" / "outbound" / HW / f"{HW}.ipynb").exists()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    log = tmp_path / "lab.log"
    # exactly what `make lab` runs: the venv's `course lab`, here without a browser of its own
    lab, port = start_on_free_port(
        lambda p: [os.path.join(os.path.dirname(sys.executable), "course"), "lab", "--port", str(p), "--no-browser",
                   "--course-dir", str(course)],
        lambda p: f"http://127.0.0.1:{p}/api/status?token={TOKEN}", log, timeout=120, cwd=course, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with playwright_api.sync_playwright() as pw:
            browser = launch_chromium(pw, tmp_path / "chromium-profile")
            try:
                page = browser.new_page()
                page.set_default_timeout(60_000)
                page.goto(f"{base}/lab?token={TOKEN}")
                page.wait_for_selector("#jp-main-dock-panel")
                # TA: formgrader loads (no alembic error) and lists the released assignment
                open_panel(page, "Formgrader")
                frame = page.frame_locator("iframe").first
                row = frame.locator("tr", has_text=HW).first
                row.wait_for(timeout=90_000)
                assert "released" in row.inner_text()
                page.screenshot(path=str(shots / "01-formgrader.png"))
                # the Course List finds the local formgrader of the course
                open_panel(page, "Course List")
                page.locator("#formgrader_list").get_by_text("optimization-for-ai").first.wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "01b-course-list.png"))
                # student: the Assignment List shows hw00; fetch it
                open_panel(page, "Assignment List")
                released = page.locator("#released_assignments_list")
                released.get_by_text(HW).first.wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "02-assignment-list.png"))
                assert "Error fetching courses" not in page.locator("#jp-main-dock-panel").inner_text()
                released.locator("button", has_text="Fetch").click()
                downloaded = page.locator("#fetched_assignments_list")
                downloaded.get_by_text(HW).first.wait_for(timeout=60_000)
                notebook = course / HW / f"{HW}.ipynb"
                assert notebook.exists(), "fetch_assignment puts the assignment into the student's folder"
                page.screenshot(path=str(shots / "03-fetched.png"))
                # edit one answer cell in the notebook, save
                page.goto(f"{base}/lab/tree/{HW}/{HW}.ipynb?token={TOKEN}")
                cell = page.locator(".jp-Cell", has_text="def logistic_grad").first
                line = cell.locator(".cm-line", has_text="raise NotImplementedError()")
                line.click()
                page.keyboard.press("End")
                page.keyboard.press("Shift+Home")
                page.keyboard.insert_text(ANSWER)
                page.keyboard.press("Control+s")
                deadline = time.monotonic() + 60
                while ANSWER not in notebook.read_text() and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert ANSWER in notebook.read_text(), "the edited cell was saved"
                page.screenshot(path=str(shots / "04-edited.png"))
                # submit from the Assignment List
                open_panel(page, "Assignment List")
                downloaded = page.locator("#fetched_assignments_list")
                downloaded.locator("button", has_text="Submit").first.click()
                submitted = page.locator("#submitted_assignments_list")
                submitted.get_by_text(HW).first.wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "05-submitted.png"))
                inbound = list((course / "exchange" / "optimization-for-ai" / "inbound").iterdir())
                assert len(inbound) == 1 and inbound[0].name.startswith(f"{os.environ.get('USER', '')}")
                # TA: collect, trusted autograde, feedback back to the exchange
                out = course_cli(course, "collect", HW, env=env)
                student = out.split()[1]
                assert (course / "submitted" / student / HW / f"{HW}.ipynb").exists(), out
                graded = course_cli(course, "autograde", HW, env=env)
                assert " 4 / 16" in graded, graded  # logistic_grad right (4 points), nothing else answered
                course_cli(course, "feedback", HW, "--release", env=env)
                # student: fetch the feedback from the same panel
                page.reload()
                page.wait_for_selector("#jp-main-dock-panel")
                open_panel(page, "Assignment List")
                submitted = page.locator("#submitted_assignments_list")
                submitted.locator("button", has_text="Fetch Feedback").first.click()
                submitted.locator("a", has_text="view feedback").first.wait_for(timeout=60_000)
                page.screenshot(path=str(shots / "06-feedback-fetched.png"))
                html = list((course / HW / "feedback").glob(f"*/{HW}.html"))
                assert len(html) == 1, list((course / HW).rglob("*"))
                text = html[0].read_text()
                assert "Trusted grader: 4 / 4 points" in text and "4.0" in text
                rel = html[0].relative_to(course)
                page.goto(f"{base}/files/{rel.as_posix()}?token={TOKEN}")
                page.wait_for_selector("text=Trusted grader")
                page.screenshot(path=str(shots / "07-feedback.png"), full_page=False)
            finally:
                browser.close()
    finally:
        stop(lab)
    taken = sorted(p.name for p in shots.glob("*.png"))
    print("screenshots:", *[str(shots / n) for n in taken], sep="\n  ")
    assert len(taken) == 8
    if os.environ.get("COURSE_SCREENSHOTS"):  # keep them past pytest's tmp rotation, e.g. for a review
        import shutil

        shutil.copytree(shots, os.environ["COURSE_SCREENSHOTS"], dirs_exist_ok=True)
