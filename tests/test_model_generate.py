"""generate() on videos through the processor and chat template: multi-turn, mixed with images, batched."""

from __future__ import annotations

import numpy as np
import torch
from conftest import random_clip
from PIL import Image

from videollm.video.types import Video


def _video(frames: int, fps: float = 2.0, seed: int = 0) -> Video:
    times = np.arange(frames) / fps
    return Video(
        frames=random_clip(frames, seed=seed),
        timestamps=times,
        indices=np.arange(frames),
        fps=fps,
        duration=frames / fps,
        num_source_frames=frames,
    )


def test_multi_turn_video_and_image_generate(tiny_model):
    model, processor = tiny_model(
        {"type": "slowfast", "slow_every": 2}, "siglip", "qwen2", time_instruction=True
    )
    image = Image.fromarray(random_clip(1, 50, 70, seed=3)[0])
    conversation = [
        {
            "role": "user",
            "content": [{"type": "video", "video": _video(4)}, {"type": "text", "text": "What happens?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A square moves."}]},
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "And here?"}],
        },
    ]
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert inputs["pixel_values_videos"].shape == (1, 4, 3, 32, 32)
    assert inputs["pixel_values"].shape[0] == 1
    text = processor.decode(inputs["input_ids"][0])
    assert "The video lasts for 2.00 seconds, and 4 frames" in text and "0.00s,0.50s,1.00s,1.50s" in text
    assert text.count("<|im_start|>") == 4  # user, assistant, user, generation prompt

    with torch.no_grad():
        next_token = model(**inputs).logits[0, -1].argmax()
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    prompt_length = inputs["input_ids"].shape[1]
    assert out.shape == (1, prompt_length + 4)
    assert out[0, prompt_length] == next_token  # generation ran the same video + image path as forward


def test_batched_generate_with_different_frame_counts(tiny_model):
    model, processor = tiny_model("spatiotemporal_pool", "clip", "llama")
    conversations = [
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Short clip?"}]}],
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Two clips:"}, {"type": "video"}, {"type": "video"}],
            }
        ],
    ]
    texts = [processor.apply_chat_template(c, add_generation_prompt=True) for c in conversations]
    videos = [random_clip(3, seed=1), random_clip(5, seed=2), random_clip(3, seed=4)]
    inputs = processor(text=texts, videos=videos, padding=True, padding_side="left", return_tensors="pt")
    assert (inputs["attention_mask"][:, -1] == 1).all()
    assert isinstance(inputs["pixel_values_videos"], list)  # 3 and 5 frames: one tensor per video
    assert [v.shape[0] for v in inputs["pixel_values_videos"]] == [3, 5, 3]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (2, inputs["input_ids"].shape[1] + 3)
