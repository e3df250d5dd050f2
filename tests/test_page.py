"""The service's page at ``/`` driven in headless Chromium (Debian's ``/usr/bin/chromium``
through Playwright): upload a clip and see its transcript and word timings; record a clip from
Chromium's fake microphone and see it sent as WAV and answered."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from factories import SR, tone_speech
from servers import running_server
from tinyrun import CLIP_TEXT, tiny_ctc_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install playwright; the browser is Debian's chromium)")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        try:
            context = browser.new_context()
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server(tiny_ctc_run()) as base:
        yield base


def test_upload_shows_transcript_and_word_timings(page: Any, server: str, tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone_speech(CLIP_TEXT, seed=11), SR)
    page.goto(server + "/")
    sync_api.expect(page.locator("#model")).to_contain_text("ctc")
    page.set_input_files("#file", str(clip))
    page.check("#chars")
    page.click("#send")
    sync_api.expect(page.locator("#transcript")).to_have_text(CLIP_TEXT)
    rows = page.locator("#words tbody tr")
    sync_api.expect(rows).to_have_count(3)
    cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(3)]
    assert [c[0] for c in cells] == CLIP_TEXT.split()
    assert all(float(c[1]) < float(c[2]) for c in cells)
    sync_api.expect(page.locator("#chars-table tbody tr")).to_have_count(7)


def test_a_bad_file_shows_the_servers_error(page: Any, server: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    page.goto(server + "/")
    page.set_input_files("#file", str(notes))
    page.click("#send")
    sync_api.expect(page.locator("#status")).to_contain_text("error 415")


def test_recording_is_sent_as_wav_and_answered(page: Any, server: str) -> None:
    page.goto(server + "/")
    page.click("#record")
    sync_api.expect(page.locator("#stop")).to_be_enabled()
    page.wait_for_timeout(1200)  # about a second of Chromium's fake microphone (a beep)
    page.click("#stop")
    sync_api.expect(page.locator("#status")).to_contain_text("s of audio transcribed")
    duration = float(page.locator("#status").inner_text().split(" ")[0])
    assert 0.5 < duration < 5.0
