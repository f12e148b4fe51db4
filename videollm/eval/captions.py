"""Caption metrics: the COCO caption evaluation (pycocoevalcap) with its PTB tokenizer.

BLEU-1..4, METEOR, ROUGE-L and CIDEr, corpus-level over all videos, exactly as
`pycocoevalcap.eval.COCOEvalCap.evaluate` computes them (and lmms-eval's coco_cap/vatex tasks):
references and predictions go through the Stanford PTB tokenizer (java), then each scorer's
`compute_score(gts, res)`. SPICE is left out: it needs a Stanford CoreNLP model download.
A video without a prediction is scored with an empty caption, never dropped.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Mapping, Sequence

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
NOT_COMPUTED = {"SPICE": "needs Stanford CoreNLP models downloaded at first use; not available offline"}


class CaptionMetricsError(RuntimeError):
    pass


def caption_scores(
    references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]
) -> dict[str, float]:
    """Corpus-level scores for `references[video] = [captions]` vs `predictions[video] = caption`."""
    if shutil.which("java") is None:
        raise CaptionMetricsError(
            "caption metrics need java (pycocoevalcap's PTB tokenizer and METEOR are Java programs): "
            "install a JRE, e.g. `apt-get install default-jre-headless`"
        )
    if not references:
        raise CaptionMetricsError("no videos to score")
    ids = list(references)
    gts = {i: [{"caption": c} for c in references[i]] for i in ids}
    res = {i: [{"caption": predictions.get(i) or ""}] for i in ids}
    with contextlib.redirect_stdout(sys.stderr):  # pycocoevalcap prints progress; keep stdout for results
        return _scores(ids, gts, res)


def _scores(ids: list[str], gts: dict, res: dict) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts_tok, res_tok = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    # the tokenizer drops ids whose only caption tokenizes to nothing: score those as empty
    res_tok = {i: res_tok.get(i, [""]) for i in ids}
    gts_tok = {i: gts_tok.get(i, [""]) for i in ids}
    scores: dict[str, float] = {}
    factories = (
        (lambda: Bleu(4), METRICS[:4]),
        (Meteor, ("METEOR",)),
        (Rouge, ("ROUGE_L",)),
        (Cider, ("CIDEr",)),
    )
    for factory, names in factories:
        scorer = factory()
        value, _ = scorer.compute_score(gts_tok, res_tok)
        if isinstance(value, list):
            scores.update({n: float(v) for n, v in zip(names, value, strict=True)})
        else:
            scores[names[0]] = float(value)
        del scorer  # METEOR's java process ends with its (last) reference
    return scores
