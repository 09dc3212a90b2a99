"""The page in a real headless Chromium: load, upload a goal, command the arm, see the result.

Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` Python package (its
driver only: no browser download, the system Chromium is launched).
"""

from __future__ import annotations

import io
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))
from tiny_reacher import ENV, tiny_checkpoint  # noqa: E402

from goalrl.goal_image import save_goal_png  # noqa: E402
from goalrl.reacher import capture_goal  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 120_000

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
    pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)  # fmt: skip


def launch(playwright, user_data_dir: Path):
    """A persistent context: a fresh profile folder of our own, nothing shared."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
        headless=True,
        args=CHROMIUM_ARGS,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from goalrl.serve import start_server

    ckpt = tiny_checkpoint(tmp_path_factory)
    out = tmp_path_factory.mktemp("browser_serve") / "out"
    srv = start_server(ckpt, out, port=0, device="cpu", max_steps=5, realtime=False, gallery=2)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    yield srv
    srv.close()
    thread.join(10)


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    with sync_api.sync_playwright() as playwright:
        context = launch(playwright, tmp_path_factory.mktemp("chromium_profile"))
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(server.url)
        yield page
        context.close()


def test_page_shows_the_scene_camera_and_gallery(page) -> None:
    sync_api.expect(page.get_by_test_id("scene-info")).to_contain_text(ENV)
    page.wait_for_function("window.goalrl.framesShown >= 1")
    assert page.eval_on_selector("#camera", "img => img.naturalWidth") == 256
    sync_api.expect(page.locator("#gallery .thumb")).to_have_count(2)
    page.wait_for_function(
        "[...document.querySelectorAll('#gallery img')].every(i => i.naturalWidth > 0)"
    )


def test_upload_a_goal_command_the_arm_and_see_the_result(page, tmp_path) -> None:
    goal = tmp_path / "my goal.png"
    save_goal_png(goal, capture_goal(ENV, 1_000_000, image_size=64))  # the scene's own goal
    page.get_by_test_id("upload").set_input_files(str(goal))
    sync_api.expect(page.get_by_test_id("message")).to_contain_text("Uploaded my goal.png")
    sync_api.expect(page.locator("#gallery .thumb")).to_have_count(3)
    selected = page.locator('#gallery .thumb[aria-selected="true"]')
    sync_api.expect(selected).to_contain_text("my goal.png")

    page.get_by_test_id("command").click()
    result = page.locator('[data-testid="result"][data-state="done"]')
    sync_api.expect(result).to_be_visible()
    sync_api.expect(result).to_contain_text("steps")
    sync_api.expect(page.get_by_test_id("progress-text")).to_contain_text("done")
    assert page.locator("#qplot polyline").count() == 1
    video = page.get_by_test_id("result-video")
    sync_api.expect(video).to_be_visible()
    assert "/files/runs/" in video.get_attribute("src")
    # Chromium decodes the WebM: it knows the video's duration and frame size
    page.wait_for_function(
        "(() => { const v = document.getElementById('result-video');"
        " return v.readyState >= 1 && v.duration > 0 && v.videoWidth > 0; })()"
    )


def test_bad_uploads_show_the_server_message(page, tmp_path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    page.get_by_test_id("upload").set_input_files(str(text))
    sync_api.expect(page.get_by_test_id("message")).to_contain_text("not an image")
    gray = tmp_path / "gray.png"
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(buf, format="PNG")
    gray.write_bytes(buf.getvalue())
    page.get_by_test_id("upload").set_input_files(str(gray))
    sync_api.expect(page.get_by_test_id("message")).to_contain_text("grayscale")
    sync_api.expect(page.locator("#gallery .thumb")).to_have_count(3)  # nothing added


def test_capture_and_reset_from_the_page(page) -> None:
    page.fill("#capture-seed", "42")
    page.get_by_test_id("capture").click()
    sync_api.expect(page.get_by_test_id("message")).to_contain_text("goal of episode 42")
    sync_api.expect(page.locator("#gallery .thumb")).to_have_count(4)
    shown = page.evaluate("window.goalrl.framesShown")
    page.fill("#reset-seed", "7")
    page.get_by_test_id("reset").click()
    sync_api.expect(page.get_by_test_id("message")).to_contain_text("episode 7")
    page.wait_for_function(f"window.goalrl.framesShown > {shown}")  # the new scene is shown
