"""The transformers engine's server, end to end over real HTTP with the official `openai` client.

One tiny random model and one server (uvicorn on 127.0.0.1, in a thread) for the module; real mp4
files; every bad input answered with an OpenAI-shaped error, and the server still serving after.
"""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from media import write_counter_video
from serving import app_server, bad_requests, data_url, run_bad_requests, save_tiny, write_clip

from videollm.inference.media import MediaPolicy
from videollm.video.limits import MediaLimits
from videollm.video.sampling import FrameSampler

API_KEY = "sk-test"
QUESTION = "What happens in the video?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_hf")
    model_dir = save_tiny(tmp / "model", "spatiotemporal_pool")
    media = tmp / "media"
    media.mkdir()
    policy = MediaPolicy(
        limits=MediaLimits(max_bytes=200_000, max_duration_s=20, max_pixels=320 * 240, max_frames=32),
        allowed_local_root=str(media),
        allowed_domains=("media.invalid",),
        num_frames=8,
        timeout_s=30,
    )
    with app_server(model_dir, policy, API_KEY) as (url, generator):
        from transformers import AutoConfig

        yield {
            "url": url,
            "media": media,
            "tmp": tmp,
            "generator": generator,
            "model_dir": model_dir,
            "config": AutoConfig.from_pretrained(model_dir),
        }


@pytest.fixture(scope="module")
def clip(server):
    return write_clip(server["media"] / "clip.mp4")


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=API_KEY, max_retries=0)


def ask(client, url, question=QUESTION, **kwargs):
    content = [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": question}]
    kwargs.setdefault("max_tokens", 8)
    kwargs.setdefault("temperature", 0)
    return client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": content}], **kwargs
    )


def expected_prompt_tokens(server, frames: int, question: str = QUESTION) -> int:
    from videollm.model import VideoLLMProcessor, video_num_tokens

    processor = VideoLLMProcessor.from_pretrained(server["model_dir"])
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    return len(processor.tokenizer(text)["input_ids"]) - 1 + video_num_tokens(server["config"], frames)


def test_chat_completion_counts_usage_and_stops_at_max_tokens(server, client, clip):
    r = ask(client, data_url(clip), max_tokens=5)
    assert r.object == "chat.completion" and r.model == "tiny"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    assert r.usage.prompt_tokens == expected_prompt_tokens(server, 8)  # the server's default: 8 frames
    assert r.usage.total_tokens == r.usage.prompt_tokens + 5


def test_greedy_is_deterministic_and_streaming_matches(client, clip):
    url = data_url(clip)
    first = ask(client, url, max_tokens=12).choices[0].message.content
    assert ask(client, url, max_tokens=12).choices[0].message.content == first
    chunks = list(ask(client, url, max_tokens=12, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_per_request_frames_are_honoured(server, client, clip):
    url = data_url(clip)
    for extra, frames in [
        ({"mm_processor_kwargs": {"num_frames": 4}}, 4),
        ({"media_io_kwargs": {"video": {"num_frames": 16}}}, 16),
    ]:
        r = ask(client, url, max_tokens=1, extra_body=extra)
        assert r.usage.prompt_tokens == expected_prompt_tokens(server, frames)


def test_frames_endpoint_shows_the_sampled_frames(server, clip):
    counter = write_counter_video(server["media"] / "counter.mp4", num_frames=60, fps=30)
    r = httpx.post(
        server["url"] + "/v1/videollm/frames",
        json={"video": data_url(counter), "num_frames": 5},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["indices"] == FrameSampler.uniform(5).indices(60, 30.0).tolist()
    assert len(body["thumbnails"]) == 5 and body["thumbnails"][0].startswith("data:image/jpeg;base64,")
    assert body["timestamps"] == pytest.approx([i / 30 for i in body["indices"]], abs=1e-3)


def test_models_health_and_page(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert httpx.get(server["url"] + "/health").json() == {"status": "ok"}
    page = httpx.get(server["url"] + "/")
    assert page.status_code == 200 and "videollm chat" in page.text


def test_stop_strings_and_seeded_sampling(client, clip):
    url = data_url(clip)
    greedy = ask(client, url, max_tokens=12).choices[0].message.content
    stop = greedy[3:5]
    r = ask(client, url, max_tokens=12, stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == greedy[: greedy.find(stop)]
    a = ask(client, url, max_tokens=12, temperature=1.0, seed=7).choices[0].message.content
    b = ask(client, url, max_tokens=12, temperature=1.0, seed=7).choices[0].message.content
    assert a == b


def test_concurrent_requests_share_batches(server, client, clip):
    url = data_url(clip)
    results: list = [None] * 8

    def one(i):
        results[i] = ask(client, url, question=f"Question {i}?", max_tokens=6)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None and r.usage.completion_tokens == 6 for r in results)
    assert server["generator"].stats["max_batch"] > 1


def test_client_disconnect_mid_stream_frees_its_row(server, clip):
    gen = server["generator"]
    before = gen.stats["cancelled"]
    body = {
        "model": "tiny",
        "stream": True,
        "max_tokens": 3000,
        "temperature": 0,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": data_url(clip)}},
                    {"type": "text", "text": "long"},
                ],
            }
        ],
    }
    with (
        httpx.Client(timeout=60) as h,
        h.stream(
            "POST",
            server["url"] + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as r,
    ):
        lines = r.iter_lines()
        for line in lines:
            if '"content"' in line and '"content": ""' not in line:
                break  # tokens are flowing: hang up
    deadline = time.monotonic() + 60
    while gen.stats["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gen.stats["cancelled"] == before + 1


def test_bad_input_gets_openai_shaped_errors_and_the_server_keeps_serving(server, client, clip):
    cases = bad_requests(server["media"], server["tmp"], clip, "tiny", engine="transformers")
    failures, hits = run_bad_requests(server["url"], API_KEY, cases, clip)
    assert not failures, "\n".join(failures)
    assert hits == []  # no request ever reached the non-allowed host
    assert ask(client, data_url(clip)).usage.completion_tokens == 8  # still serving


def test_image_parts_and_text_only_requests(client):
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(buf, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "What colour?"}]
    r = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": content}], max_tokens=3
    )
    assert r.usage.completion_tokens == 3
    r = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=3
    )
    assert r.usage.completion_tokens == 3
