"""Caption metrics equal a direct pycocoevalcap computation (PTB tokenizer + BLEU/METEOR/ROUGE-L/CIDEr)."""

from __future__ import annotations

import shutil

import pytest

from videollm.eval.captions import METRICS, NOT_COMPUTED, caption_scores

pytestmark = [
    pytest.mark.skipif(
        shutil.which("java") is None, reason="pycocoevalcap needs java (default-jre-headless)"
    ),
    pytest.mark.slow,  # three METEOR java start-ups: ~45 s on 2 shared cores
]

REFS = {
    "video7010": [
        "a man is talking about a car",
        "a person describes a red car",
        "someone talks about cars.",
    ],
    "video7011": ["a cat is playing with a ball", "the kitten plays with a toy ball"],
    "video7012": ["people are dancing on a stage", "a group of dancers perform"],
}
PREDS = {
    "video7010": "A man talks about a red car.",
    "video7011": "a cat plays with a ball",
}  # video7012: none


def direct_pycocoevalcap(refs, preds):
    """What `COCOEvalCap.evaluate` does (minus SPICE), called on pycocoevalcap directly."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize(
        {k: [{"image_id": k, "id": n, "caption": c} for n, c in enumerate(v)] for k, v in refs.items()}
    )
    res = tok.tokenize({k: [{"image_id": k, "caption": preds.get(k, "")}] for k in refs})
    out = {}
    bleu, _ = Bleu(4).compute_score(gts, res)
    out.update(dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], bleu, strict=True)))
    meteor = Meteor()
    out["METEOR"], _ = meteor.compute_score(gts, res)
    del meteor
    out["ROUGE_L"], _ = Rouge().compute_score(gts, res)
    out["CIDEr"], _ = Cider().compute_score(gts, res)
    return out


def test_equal_to_direct_pycocoevalcap_with_a_missing_prediction_scored_empty():
    ours = caption_scores(REFS, PREDS)
    assert list(ours) == list(METRICS)
    direct = direct_pycocoevalcap(REFS, PREDS)
    for name in METRICS:
        assert ours[name] == pytest.approx(direct[name], abs=1e-12), name
    # the empty caption is scored, not dropped: dropping the video would give a different CIDEr
    from pycocoevalcap.cider.cider import Cider

    kept = {k: [" ".join(c.lower().strip(".").split()) for c in REFS[k]] for k in PREDS}
    dropped, _ = Cider().compute_score(kept, {k: [PREDS[k].lower().strip(".")] for k in PREDS})
    assert dropped != pytest.approx(ours["CIDEr"])
    assert "SPICE" in NOT_COMPUTED
