"""The starter's finetune conversations: multiple-choice replies in the recipe's order (`mc_reply`), and a
recipe naming an unknown order is refused before anything trains."""

from __future__ import annotations

import string

import numpy as np
import pytest

from videollm.data.questions import QA
from videollm.data.synthetic import render_world
from videollm.starter.conversations import clip_conversation, turn
from videollm.starter.train import load_starter_recipe
from videollm.train.recipe import RecipeError

QUESTION = QA(
    qtype="direction",
    objects=(0,),
    question="Which direction does the red circle move?",
    answer="not moving",
    sentence="The red circle does not move.",
    candidates=("up", "not moving", "left"),
)


def test_turn_writes_the_multiple_choice_reply_in_the_given_order():
    prompt, reply = turn(QUESTION, "mc")
    assert reply == "(B) not moving" and "(B) not moving\n" in prompt
    assert turn(QUESTION, "mc", "answer_first") == (prompt, "not moving (B)")
    assert turn(QUESTION, "short", "answer_first")[1] == "not moving"  # other forms are unchanged


def test_clip_conversations_use_the_order_for_every_multiple_choice_turn(tmp_path):
    world = render_world(tmp_path, num_videos=2, num_test_videos=0, frames=8, size=32)
    rng = np.random.default_rng(0)
    replies = []
    for _ in range(20):
        for item in world.splits["train"].items:
            conv = clip_conversation(
                item, rng, max_turns=4, form_weights=(0.0, 0.0, 1.0), mc_order="answer_first"
            )
            replies += [m["content"][0]["text"] for m in conv if m["role"] == "assistant"]
    mc = [r for r in replies if r.endswith(")")]
    assert mc and all(r[-3] == "(" and r[-2] in string.ascii_uppercase for r in mc)
    assert not any(r.startswith("(") and r[2:4] == ") " for r in replies)


def test_an_unknown_mc_reply_is_refused_naming_stage_and_field(tmp_path):
    recipe = tmp_path / "starter.yaml"
    recipe.write_text("stages:\n  - {name: finetune, steps: 1, mc_reply: last}\n")
    with pytest.raises(
        RecipeError, match=r"stages\.finetune\.mc_reply must be one of letter_first, answer_first"
    ):
        load_starter_recipe(recipe)
