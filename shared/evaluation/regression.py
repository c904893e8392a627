"""Regression metrics (sklearn / numpy)."""

import numpy as np
from sklearn import metrics as skm


def regression_metrics(y, pred, groups=None):
    """Pearson r, MAE, RMSE, R², the sign agreement of non-zero targets and, with `groups`
    (a name per example), the MAE of each group."""
    y, pred = np.asarray(y, np.float64).reshape(-1), np.asarray(pred, np.float64).reshape(-1)
    nonzero = y != 0
    result = {
        "pearson_r": float(np.corrcoef(y, pred)[0, 1]) if len(y) > 1 and y.std() and pred.std() else 0.0,
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else 0.0,
        "sign_accuracy": float(np.mean(np.sign(pred[nonzero]) == np.sign(y[nonzero]))) if nonzero.any() else 0.0,
        "num_examples": int(len(y)),
    }
    if groups is not None:
        groups = np.asarray(groups)
        result["per_group_mae"] = {str(g): float(np.mean(np.abs(pred - y)[groups == g]))
                                   for g in sorted(set(groups.tolist()))}
    return result
