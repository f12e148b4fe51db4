"""The web chat page, end to end in headless Chromium: upload a video, see its frames, ask, follow up.

Uses Debian's `chromium` through Playwright's Python package (no browser download): both are
installed from the registries when missing (apt; pip into .cache/playwright, not the project venv).
Slow tier: the installs and the browser take tens of seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from serving import PY, REPO, app_server, save_tiny, write_clip

from videollm.inference.media import MediaPolicy

pytestmark = pytest.mark.slow

API_KEY = "sk-web"


def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=False, env=env, capture_output=True)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True, text=True
    )
    found = shutil.which("chromium")
    if not found:
        pytest.fail(
            f"the web test needs Debian's chromium: `apt-get install chromium` failed:\n{done.stderr[-2000:]}"
        )
    return found


def playwright_sync_api():
    """Playwright's Python package, pip-installed into .cache/playwright when the environment lacks it."""
    try:
        from playwright import sync_api
    except ImportError:
        target = REPO / ".cache" / "playwright"
        if not (target / "playwright").is_dir():
            subprocess.run(
                [PY, "-m", "pip", "install", "-q", "--target", str(target), "playwright"], check=True
            )
        sys.path.insert(0, str(target))
        from playwright import sync_api
    return sync_api


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    model_dir = save_tiny(tmp / "model", "spatiotemporal_pool")
    clip = write_clip(tmp / "clip.mp4")
    with app_server(model_dir, MediaPolicy(num_frames=6), API_KEY) as (url, _):
        yield url, clip


def test_upload_see_frames_ask_and_follow_up(site):
    url, clip = site
    sync_api = playwright_sync_api()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.fill("#apikey", API_KEY)
            page.evaluate("connect()")  # re-read /v1/models with the key
            page.wait_for_function("document.getElementById('server').textContent.includes('tiny')")
            page.set_input_files("#file", str(clip))
            page.wait_for_function("document.querySelectorAll('#frames img').length === 6", timeout=60_000)
            assert "6 frames" in page.text_content("#status")

            page.fill("#question", "What moves?")
            page.click("#send")
            page.wait_for_selector(".assistant[data-done='1']", timeout=120_000)
            first = page.text_content(".assistant")
            assert first and first.strip()

            page.wait_for_function("!document.getElementById('send').disabled")
            page.fill("#question", "And then?")
            page.click("#send")
            page.wait_for_function(
                "document.querySelectorAll(\".assistant[data-done='1']\").length === 2", timeout=120_000
            )
            # the follow-up carried the whole conversation: video turn, answer, question, answer
            roles = page.evaluate("messages.map(m => m.role)")
            assert roles == ["user", "assistant", "user", "assistant"]
            assert page.evaluate("messages[0].content[0].type") == "video_url"
            assert page.evaluate("messages[1].content") == first
            assert page.query_selector(".error") is None
        finally:
            browser.close()
