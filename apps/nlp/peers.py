"""Peers scored on the same test split as our models."""

import numpy as np

from shared.evaluation.classification import classification_metrics
from shared.evaluation.regression import regression_metrics


def vader_peer(texts, targets, groups=None, regression=False):
    """The VADER rule-based analyser (`vaderSentiment`, Hutto & Gilbert 2014) on `texts`: its
    compound score in [-1, 1] read as P(positive) = (compound + 1) / 2 (ties at 0 go to
    positive), or for `--target score` scaled by 4 to the raters' [-4, 4] range."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    compound = np.array([analyser.polarity_scores(t.decode("utf-8") if isinstance(t, bytes) else t)["compound"]
                         for t in texts])
    if regression:
        return regression_metrics(targets, 4 * compound, groups)
    positive = np.clip((compound + 1) / 2, 0, 1)
    positive = np.where(compound == 0, 0.5 + 1e-6, positive)
    result = classification_metrics(targets, np.stack([1 - positive, positive], -1), ("negative", "positive"), groups)
    return {k: v for k, v in result.items() if k not in ("per_class", "confusion_matrix", "log_loss")}
