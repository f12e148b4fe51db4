"""Ask a served videollm model about a local video with the official `openai` client.

python serve/client_openai.py clip.mp4 "What happens in the video?" --base-url http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

from openai import OpenAI


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("video")
    p.add_argument("question")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--api-key", default="EMPTY")
    p.add_argument("--frames", type=int, default=None, help="per-request frame count")
    args = p.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    model = client.models.list().data[0].id
    url = "data:video/mp4;base64," + base64.b64encode(Path(args.video).read_bytes()).decode()
    stream = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": url}},
                    {"type": "text", "text": args.question},
                ],
            }
        ],
        max_tokens=256,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mm_processor_kwargs": {"num_frames": args.frames}} if args.frames else None,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage:
            print(
                f"\n[{chunk.usage.prompt_tokens} prompt + {chunk.usage.completion_tokens} completion tokens]"
            )


if __name__ == "__main__":
    main()
