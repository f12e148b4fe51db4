"""`videollm chat`: one-shot and multi-turn, against an endpoint and with a local model."""

from __future__ import annotations

import argparse
import io

import pytest
from serving import app_server, save_tiny, write_clip

from videollm.inference.media import MediaPolicy
from videollm.serve import chat


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chat")
    model_dir = save_tiny(tmp / "model", "spatiotemporal_pool")
    clip = write_clip(tmp / "clip.mp4")
    with app_server(model_dir, MediaPolicy(num_frames=8), api_key="sk-chat") as (url, _):
        yield {"url": url + "/v1", "model_dir": model_dir, "clip": clip}


def test_one_shot_through_an_endpoint_matches_the_local_model(setup, capsys):
    argv = [str(setup["clip"]), "-q", "What happens?", "--max-tokens", "10", "--frames", "8"]
    assert chat.main([*argv, "--endpoint", setup["url"], "--api-key", "sk-chat"]) == 0
    remote = capsys.readouterr().out
    assert chat.main([*argv, "--model", str(setup["model_dir"])]) == 0
    local = capsys.readouterr().out
    assert remote.strip() and remote == local  # same model, frames and greedy decoding, either way


def test_follow_ups_keep_the_conversation(setup):
    args = argparse.Namespace(
        endpoint=setup["url"], api_key="sk-chat", frames=None, max_tokens=6, temperature=0.0
    )
    answer = chat.endpoint_answerer(args)
    lines = iter(["What moves?", "", "And then?", "/exit", "never read"])
    out = io.StringIO()
    messages = chat.converse(
        answer, chat.video_url(str(setup["clip"])), None, read=lambda: next(lines), out=out
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"][0]["type"] == "video_url" and messages[2]["content"] == "And then?"
    assert out.getvalue().count("\n") == 2


def test_missing_video_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="is not a file"):
        chat.video_url(str(tmp_path / "nope.mp4"))
