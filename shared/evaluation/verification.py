"""Verification by embeddings (faces, speakers): every pair of examples is a trial, genuine when
both share an identity. ROC AUC, equal error rate and the true-accept rate at a false-accept
rate, from sklearn's ROC; the operating threshold is chosen on validation identities."""

import numpy as np


def _unit(embeddings):
    e = np.asarray(embeddings, np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def pair_trials(embeddings, identities):
    """(cosine similarity, genuine?) of every unordered pair: float64 [P], bool [P]."""
    e = _unit(embeddings)
    ids = np.asarray(identities)
    i, j = np.triu_indices(len(e), k=1)
    return (e[i] * e[j]).sum(1), ids[i] == ids[j]


def threshold_at_far(scores, genuine, far=0.01):
    """The lowest similarity threshold (accept when score >= it) whose false-accept rate on
    these trials is at most `far`."""
    impostor = np.sort(np.asarray(scores)[~np.asarray(genuine)])[::-1]
    if not len(impostor):
        raise ValueError("no impostor pairs: need at least two identities")
    allowed = int(np.floor(far * len(impostor)))  # impostors that may score at or above it
    return float(np.nextafter(impostor[allowed], np.inf)) if allowed < len(impostor) else float(impostor[-1])


def rates_at(scores, genuine, threshold):
    """(true-accept rate, false-accept rate) when pairs with score >= threshold are accepted."""
    scores, genuine = np.asarray(scores), np.asarray(genuine)
    accept = scores >= threshold
    return float(accept[genuine].mean()), float(accept[~genuine].mean())


def verification_metrics(scores, genuine, far=0.01):
    """ROC AUC, EER and TAR at FAR = `far` of the trials (the TAR at the strictest threshold
    whose FAR is within `far`), with the pair counts."""
    from sklearn.metrics import roc_auc_score, roc_curve

    genuine = np.asarray(genuine, bool)
    fpr, tpr, _ = roc_curve(genuine, scores)
    k = int(np.nanargmin(np.abs((1 - tpr) - fpr)))
    threshold = threshold_at_far(scores, genuine, far)
    tar, _ = rates_at(scores, genuine, threshold)
    return {"roc_auc": float(roc_auc_score(genuine, scores)), "eer": float((fpr[k] + 1 - tpr[k]) / 2),
            f"tar_at_far_{far:g}": tar, "genuine_pairs": int(genuine.sum()), "impostor_pairs": int((~genuine).sum())}


def rank1_identification(embeddings, identities):
    """Closed-set identification: each identity's first example is its gallery template, the
    others are probes; the share of probes whose most similar template is their own."""
    e = _unit(embeddings)
    ids = np.asarray(identities)
    names, first = np.unique(ids, return_index=True)
    probes = np.setdiff1d(np.arange(len(ids)), first)
    if not len(probes):
        return float("nan")
    best = np.argmax(e[probes] @ e[first].T, axis=1)
    return float(np.mean(names[best] == ids[probes]))
