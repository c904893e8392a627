"""Binary risk scores: discrimination, calibration and an operating point (sklearn / scipy).

`fit_temperature` is temperature scaling (Guo et al., 2017): one scalar dividing the logits,
fitted by minimising the validation log loss; it changes calibration, never the ranking.
"""

import numpy as np
from sklearn import metrics as skm

ECE_BINS = 15


def expected_calibration_error(y, p, bins=ECE_BINS):
    """Mean |observed rate - mean predicted probability| over equal-width probability bins,
    weighted by the bin's share of examples."""
    y, p = np.asarray(y, np.float64).reshape(-1), np.asarray(p, np.float64).reshape(-1)
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(y[which == b].mean() - p[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def fit_temperature(logits, y):
    """The temperature T > 0 minimising the log loss of sigmoid(logits / T) against `y`."""
    from scipy.optimize import minimize_scalar

    logits, y = np.asarray(logits, np.float64), np.asarray(y, np.float64)

    def nll(log_t):
        z = logits / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, z) - y * z))

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def operating_threshold(y, p):
    """The probability threshold with the largest Youden J (sensitivity + specificity - 1)."""
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def risk_metrics(y, p, threshold):
    """ROC AUC, PR AUC (average precision), Brier score, ECE, log loss, and sensitivity,
    specificity, PPV and NPV at `threshold`."""
    y, p = np.asarray(y).reshape(-1).astype(int), np.asarray(p, np.float64).reshape(-1)
    predicted = p >= threshold
    tp, fn = int(np.sum(predicted & (y == 1))), int(np.sum(~predicted & (y == 1)))
    tn, fp = int(np.sum(~predicted & (y == 0))), int(np.sum(predicted & (y == 0)))
    both = len(set(y.tolist())) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, p)) if both else float("nan"),
        "brier": float(skm.brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "threshold": float(threshold),
        "sensitivity": tp / max(tp + fn, 1),
        "specificity": tn / max(tn + fp, 1),
        "ppv": tp / max(tp + fp, 1),
        "npv": tn / max(tn + fn, 1),
        "prevalence": float(y.mean()),
        "num_examples": int(len(y)),
    }


def reliability_png(y, p, path, bins=10, title="Reliability (test)"):
    """Observed event rate against mean predicted probability per bin, with bin counts."""
    from shared.evaluation.plots import plt

    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    filled = [b for b in range(bins) if np.any(which == b)]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.5, 5.5), dpi=100, height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, label="perfect")
    ax.plot([p[which == b].mean() for b in filled], [y[which == b].mean() for b in filled], "o-", label="model")
    ax.set(ylabel="observed rate", title=f"{title}, ECE {expected_calibration_error(y, p):.3f}")
    ax.legend(loc="upper left")
    hist.hist(p, bins=bins, range=(0, 1), color="tab:blue", alpha=0.6)
    hist.set(xlabel="predicted probability", ylabel="count")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def roc_png(y, p, path, threshold=None, title="ROC (test)"):
    """The ROC curve with its AUC and, if given, the operating point."""
    from shared.evaluation.plots import plt

    fpr, tpr, _ = skm.roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot(fpr, tpr, label=f"AUC {skm.roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=1)
    if threshold is not None:
        y, predicted = np.asarray(y), np.asarray(p) >= threshold
        ax.plot([np.mean(predicted[y == 0])], [np.mean(predicted[y == 1])], "ro",
                label=f"operating point (p ≥ {threshold:.2f})")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
