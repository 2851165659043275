"""Does the KB answer this question? A calibrated probability from the two readers' signals.

    p = 1 / (1 + exp(-(w_evidence * evidence + w_cross * clip(cross, lo, hi) + bias)))

evidence: the bi-encoder evidence score (AnswerConfig: word coverage of the question in what was
found, mixed with the best sentence's cosine), 0..1. cross: the cross-encoder's best logit over the
candidate sentences (retriever.cross_encoder), clipped so that one very sure or very lost sentence
does not outweigh the evidence. The coefficients are a logistic regression fitted by
`python -m eval.second_reader --fit` on calibration questions only (data/answerability_calibration.jsonl
and data/unanswerable.jsonl: 48 answerable, 78 not, about the sample KB); the threshold is the one
with the best balanced accuracy on them (in-sample: 0.562 of the answerable answered, 0.885 of the
rest abstained; out-of-fold over 5 folds: 0.542 and 0.821). The figures `python -m eval.answers` reports come from
other questions. p is calibrated to that mix (38% answerable): read it as a score, not a frequency,
on a KB where most questions are answerable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Answerability:
    """The fitted model (see the module docstring); threshold: answer when p >= threshold."""

    w_evidence: float = 0.939
    w_cross: float = 0.1417
    bias: float = -0.902
    cross_low: float = -6.0
    cross_high: float = 9.0
    threshold: float = 0.53

    def probability(self, evidence: float, cross: float) -> float:
        """P(answerable) in 0..1 from evidence (0..1) and the best cross-encoder logit."""
        clipped = min(max(cross, self.cross_low), self.cross_high)
        z = self.w_evidence * evidence + self.w_cross * clipped + self.bias
        return 1.0 / (1.0 + math.exp(-z))


ANSWERABILITY = Answerability()
