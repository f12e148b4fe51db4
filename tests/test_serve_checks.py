"""Request checks and media policy: what a server refuses before touching the network or a file."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from videollm.inference.media import MediaPolicy
from videollm.serve.checks import check_chat, check_url, for_vllm, frame_settings
from videollm.serve.errors import APIError, error_body
from videollm.video.limits import MediaLimits
from videollm.video.sampling import FrameSampler
from videollm.video.types import VideoError


def chat(*parts, **extra):
    return {"model": "m", "messages": [{"role": "user", "content": list(parts)}], **extra}


def video(url):
    return {"type": "video_url", "video_url": {"url": url}}


def test_policy_round_trips_through_the_environment(tmp_path):
    policy = MediaPolicy(
        limits=MediaLimits(max_frames=32),
        allowed_local_root=str(tmp_path),
        allowed_domains=("example.org",),
        num_frames=6,
        fps=2.0,
        max_videos=2,
    )
    back = MediaPolicy.from_env({"VIDEOLLM_MEDIA": policy.to_json()})
    assert back == policy
    assert MediaPolicy.from_env({}) == MediaPolicy()


def test_sampler_defaults_and_per_request_overrides():
    policy = MediaPolicy(num_frames=8)
    assert policy.sampler() == FrameSampler.uniform(8)
    assert policy.sampler({"num_frames": 4}) == FrameSampler.uniform(4)
    assert policy.sampler({"fps": 2.0}) == FrameSampler.fps(2.0, max_frames=8)
    assert policy.sampler({"fps": 1, "max_frames": 3, "start": 1.0, "end": 2.5}) == FrameSampler.fps(
        1.0, max_frames=3, start=1.0, end=2.5
    )
    fps_policy = MediaPolicy(num_frames=16, fps=1.0)
    assert fps_policy.sampler() == FrameSampler.fps(1.0, max_frames=16)
    assert fps_policy.sampler({"num_frames": 4}) == FrameSampler.uniform(4)  # num_frames alone: uniform


@pytest.mark.parametrize(
    ("settings", "status", "words"),
    [
        ({"num_frames": 10_000}, 413, "limit of 256"),
        ({"num_frames": "8"}, 400, "integer"),
        ({"frames": 8}, 400, "unknown frame setting"),
        ({"num_frames": 0}, 400, "≥ 1"),
    ],
)
def test_bad_frame_settings_name_the_problem(settings, status, words):
    with pytest.raises(VideoError) as e:
        MediaPolicy().sampler(settings)
    assert e.value.status == status
    assert words in str(e.value)


def test_policy_refuses_impossible_server_settings(tmp_path):
    with pytest.raises(ValueError, match="--frames 300 is over the frame limit 256"):
        MediaPolicy(num_frames=300)
    with pytest.raises(ValueError, match="not a directory"):
        MediaPolicy(allowed_local_root=str(tmp_path / "missing"))


def test_chat_check_collects_media_and_frame_settings():
    body = chat(
        video("data:video/mp4;base64,AAAA"),
        {"type": "text", "text": "hi"},
        mm_processor_kwargs={"num_frames": 4},
    )
    found = check_chat(body, MediaPolicy())
    assert found.videos == ["data:video/mp4;base64,AAAA"]
    assert found.frames == {"num_frames": 4}
    forwarded = for_vllm(body, found.frames)
    assert forwarded["media_io_kwargs"] == {"video": {"num_frames": 4}}
    assert "mm_processor_kwargs" not in forwarded


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "JSON object"),
        ({"model": "m"}, "'messages' must be a non-empty list"),
        ({"messages": [{"content": "x"}]}, "string 'role'"),
        (chat({"type": "audio_url", "audio_url": {"url": "x"}}), "'audio_url' is not supported"),
        (chat({"type": "video_url", "video_url": {}}), "non-empty string"),
        (chat(video("data:video/mp4;base64,AA"), video("data:video/mp4;base64,AA")), "at most 1 per prompt"),
        (chat(video("ftp://example.org/a.mp4")), "unsupported URL scheme 'ftp'"),
        (chat(video("data:x"), mm_processor_kwargs={"do_resize": False}), "unsupported key(s) ['do_resize']"),
        (chat(video("data:x"), media_io_kwargs={"image": {}}), "only a 'video' section"),
        (chat(video("data:x"), mm_processor_kwargs={"num_frames": 999}), "over this server's limit"),
    ],
)
def test_chat_check_refusals(body, words):
    with pytest.raises(APIError) as e:
        check_chat(body, MediaPolicy())
    assert e.value.status in (400, 413)
    assert words in e.value.message


def test_file_urls_only_under_the_root_and_never_with_dotdot(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    (root / "a.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    policy = MediaPolicy(allowed_local_root=str(root))
    check_url(f"file://{root}/a.mp4", policy)
    for url, words in [
        (f"file://{root}/../secret.mp4", "'..' is not allowed"),
        (f"file://{tmp_path}/secret.mp4", "outside the allowed media root"),
    ]:
        with pytest.raises(APIError) as e:
            check_url(url, policy)
        assert words in e.value.message
    (root / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    with pytest.raises(APIError, match="outside the allowed media root"):
        check_url(f"file://{root}/link.mp4", policy)
    with pytest.raises(APIError, match="file:// URLs are disabled"):
        check_url(f"file://{root}/a.mp4", MediaPolicy())


def test_http_urls_only_for_allowed_hosts():
    policy = MediaPolicy(allowed_domains=("media.example.org",))
    check_url("https://media.example.org/v.mp4", policy)
    check_url("https://cdn.media.example.org/v.mp4", policy)
    for url in (
        "http://127.0.0.1:9/v.mp4",
        "https://example.org.evil.com/v.mp4",
        "http://evilmedia.example.org/",
    ):
        with pytest.raises(APIError, match="not an allowed media domain"):
            check_url(url, policy)
    with pytest.raises(APIError, match=r"allowed: none"):
        check_url("https://media.example.org/v.mp4", MediaPolicy())


def test_frame_settings_from_both_vllm_fields():
    assert frame_settings(
        {"mm_processor_kwargs": {"num_frames": 3}, "media_io_kwargs": {"video": {"fps": 2}}}
    ) == {
        "num_frames": 3,
        "fps": 2,
    }


def test_error_body_is_openai_shaped():
    assert error_body(413, "too big", "messages") == {
        "error": {"message": "too big", "type": HTTPStatus(413).phrase, "param": "messages", "code": 413}
    }
    assert error_body(404, "no")["error"]["type"] == "NotFoundError"
