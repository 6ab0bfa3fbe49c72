"""Chromium, an independent player, shows exactly the frames ffmpeg shows: the type 0 edit
list presents from the requested frame, and a smart-cut splice plays through. Part of the
default suite (about 15 s): scripts/bootstrap.sh installs Debian's chromium, so a machine
without it is a broken set-up, reported as a failure rather than skipped."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import ExportType
from tasks.platform.settings import Settings
from workers.archive.playlists import covering, parse_playlist
from workers.media.remux import remux
from workers.media.timeline import SegmentInput
from workers.media.transcode import transcode

FRAME_MS = 40
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("www")
    shutil.copy(Path(__file__).with_name("play.html"), root / "play.html")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def play(base: str, name: str) -> dict[str, Any]:
    assert CHROMIUM is not None, "chromium is not installed: run scripts/bootstrap.sh (make setup)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page()
        page.goto(f"{base}/play.html?src={name}")
        page.wait_for_function("document.getElementById('out').textContent !== 'pending'", timeout=60_000)
        text = page.inner_text("#out")
        browser.close()
    assert text.startswith("RESULT"), text
    return dict(json.loads(text[len("RESULT ") :]))


@pytest.mark.parametrize("kind", ["copy-edit-list", "h264-smart-cut"])  # no HEVC decoder in headless Chromium
def test_chromium_presents_the_requested_frames(served: tuple[str, Path], kind: str) -> None:
    base, root = served
    rec = generate_recording(root / f"rec-{kind}", SampleSpec(seconds=8, width=320, height=192))
    segments = parse_playlist(rec.playlist.read_text(), "r/index.m3u8", "r")
    start, end = segments[0].start_ms + 1500, segments[0].start_ms + 6500
    inputs = [SegmentInput(s, rec.directory / Path(s.key).name) for s in covering(segments, start, end)]
    out = root / f"{kind}.mp4"
    if kind == "copy-edit-list":
        remux(inputs, start, end, out, edit_list=True)
    else:
        stats = transcode(inputs, start, end, out, ExportType.H264, Settings(encode_preset="ultrafast"))
        assert stats.spliced
    result = play(base, out.name)
    seen = result["seen"]
    assert result["duration"] == pytest.approx(5.04, abs=0.01)
    assert seen[0] == [0, 37]  # frame 37 (1.48-1.52 s holds 1.5 s) shown first, at time 0
    assert seen[-1][1] == 162
    for media_ms, index in seen:  # every presented frame is the source frame of its instant
        assert index == 37 + round(media_ms / FRAME_MS)
