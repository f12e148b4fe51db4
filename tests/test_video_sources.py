"""Access rules: the local media root (.., symlinks, file://) and opt-in HTTP fetching against a real
server on 127.0.0.1 (allow-list, no request otherwise, redirects, byte cap, timeout)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from tests.media import write_counter_video, write_frame_dir
from videollm.video import FrameSampler, MediaLimits, VideoError, load_video
from videollm.video.counter import read_counter
from videollm.video.sources import host_allowed


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_counter_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 40, gop=20)


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def status_of(source, **kwargs) -> tuple[int, str]:
    with pytest.raises(VideoError) as info:
        load_video(source, FrameSampler.uniform(2), **kwargs)
    return info.value.status, str(info.value)


# --- the local media root -------------------------------------------------------------------------


@pytest.fixture
def media_root(tmp_path, clip):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "clip.mp4").write_bytes(clip.read_bytes())
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(clip.read_bytes())
    return root, outside


def test_files_under_the_root_are_allowed(media_root):
    root, _ = media_root
    inside = root / "sub" / "clip.mp4"
    for source in (inside, str(inside), inside.as_uri(), f"{root}/sub/../sub/clip.mp4"):
        assert load_video(source, FrameSampler.uniform(2), allowed_local_root=root).num_frames == 2


def test_dot_dot_escapes_are_refused(media_root):
    root, outside = media_root
    missing = root.parent / "missing.mp4"
    for source in (f"{root}/sub/../../{outside.name}", (root / ".." / outside.name).as_uri(), missing):
        status, message = status_of(source, allowed_local_root=root)
        assert status == 403 and "outside the allowed media root" in message  # existence not revealed


def test_symlinks_out_of_the_root_are_refused(media_root, tmp_path):
    root, outside = media_root
    (root / "link.mp4").symlink_to(outside)
    status, message = status_of(root / "link.mp4", allowed_local_root=root)
    assert status == 403 and "symlinks" in message
    frames = write_frame_dir(root / "frames", 3)
    write_frame_dir(tmp_path / "elsewhere", 4)
    (frames / "00004.png").symlink_to(tmp_path / "elsewhere" / "00004.png")
    status, message = status_of(frames, allowed_local_root=root)
    assert status == 403 and "00004.png" in message
    # without a root (library use) the same paths are fine
    assert load_video(root / "link.mp4", FrameSampler.uniform(2)).num_frames == 2


def test_file_urls_must_be_local(media_root):
    root, _ = media_root
    status, message = status_of(f"file://otherhost{root}/sub/clip.mp4")
    assert status == 400 and "host 'otherhost'" in message


# --- HTTP ---------------------------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-body (byte cap, timeout) is what several tests make them do


@contextmanager
def serving(body: bytes, *, delay_s: float = 0.0, chunked: bool = False) -> Iterator[dict]:
    """A real HTTP server on 127.0.0.1 that serves `body` at /clip.mp4 and logs every request path."""
    log: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            log.append(self.path)
            if self.path.startswith("/redirect?to="):
                self.send_response(302)
                self.send_header("Location", self.path.split("=", 1)[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path != "/clip.mp4":
                self.send_error(404)
                return
            time.sleep(delay_s)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(body), 4096):
                    piece = body[start : start + 4096]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "base": f"http://127.0.0.1:{server.server_address[1]}",
            "port": server.server_address[1],
            "log": log,
        }
    finally:
        server.shutdown()
        server.server_close()


def test_http_is_off_unless_the_host_is_allowed(clip):
    with serving(clip.read_bytes()) as srv:
        url = srv["base"] + "/clip.mp4"
        for domains in ((), ("example.com",), ("*.127.0.0.1",)):
            status, message = status_of(url, allowed_domains=domains)
            assert status == 403 and "allowed_domains=['127.0.0.1']" in message
        assert srv["log"] == []  # no request was made at all
        video = load_video(url, FrameSampler.uniform(5), allowed_domains=["127.0.0.1"])
        assert [read_counter(f) for f in video.frames] == video.indices.tolist()
        np.testing.assert_array_equal(video.frames, load_video(clip, FrameSampler.uniform(5)).frames)
        assert srv["log"] == ["/clip.mp4"]


def test_redirects_to_other_hosts_are_refused(clip):
    with serving(clip.read_bytes()) as srv:
        elsewhere = f"http://localhost:{srv['port']}/clip.mp4"
        status, message = status_of(f"{srv['base']}/redirect?to={elsewhere}", allowed_domains=["127.0.0.1"])
        assert status == 403 and "redirect" in message
        assert srv["log"] == [f"/redirect?to={elsewhere}"]  # the target was never requested
        same_host = f"{srv['base']}/redirect?to=/clip.mp4"
        assert load_video(same_host, FrameSampler.uniform(2), allowed_domains=["127.0.0.1"]).num_frames == 2


@pytest.mark.parametrize("chunked", [False, True])
def test_http_byte_cap(clip, chunked):
    body = clip.read_bytes()
    with serving(body, chunked=chunked) as srv:
        status, message = status_of(
            srv["base"] + "/clip.mp4",
            allowed_domains=["127.0.0.1"],
            limits=MediaLimits(max_bytes=len(body) // 2),
        )
    assert status == 413 and "MediaLimits.max_bytes" in message


def test_http_timeout(clip):
    with serving(clip.read_bytes(), delay_s=5.0) as srv:
        status, message = status_of(srv["base"] + "/clip.mp4", allowed_domains=["127.0.0.1"], timeout_s=0.5)
    assert status == 504 and "timeout_s=0.5" in message


def test_http_errors_name_the_url(clip):
    with serving(clip.read_bytes()) as srv:
        url = srv["base"] + "/missing.mp4"
        status, message = status_of(url, allowed_domains=["127.0.0.1"])
    assert status == 400 and "HTTP 404" in message and url in message


def test_host_allow_list_matching():
    assert host_allowed("videos.example.com", ["videos.example.com"])
    assert host_allowed("VIDEOS.example.com.", ["videos.example.com"])
    assert host_allowed("cdn.example.com", ["*.example.com"])
    assert host_allowed("a.b.example.com", [".example.com"])
    assert not host_allowed("example.com.evil.org", ["example.com"])
    assert not host_allowed("evilexample.com", ["*.example.com"])
    assert not host_allowed("example.com", ["*.example.com"])
    assert not host_allowed(None, ["example.com"])
