"""Judge-free open-ended scores: exact match and token F1 with SQuAD's answer normalisation.

Used when no judge endpoint is given (the report then says the judge score is absent) and always
for the synthetic world, whose short answers are exact by construction. Normalisation is the
SQuAD v1.1 evaluation script's: lower case, punctuation and articles (a/an/the) removed,
whitespace collapsed.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(pred: str, answer: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(answer))


def token_f1(pred: str, answer: str) -> float:
    p, a = normalize_answer(pred).split(), normalize_answer(answer).split()
    if not p or not a:
        return float(p == a)
    common = sum((Counter(p) & Counter(a)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(a)
    return 2 * precision * recall / (precision + recall)
