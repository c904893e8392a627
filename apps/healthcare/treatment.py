"""`dl-health train treatment`: personalised treatment effects with TARNet, CFR or Dragonnet.

Embedded benchmark (`--data ihdp`): IHDP (Hill, 2011): 747 infants × 25 covariates of the
Infant Health and Development Program, with outcome surfaces drawn by econml's
`ihdp_surface_B(random_state=k)` for realisations k = 0..R-1, so both potential outcomes
are known. Each realisation has its own seeded 63/27/10 train/validation/test split (the
CFR paper's), and the R realisations train as R copies of the network in one graph
(`shared.architectures.counterfactual`). Users' data (`--data csv:PATH --treatment COL
--outcome COL`): no ground truth; the R copies are then a bootstrap ensemble and the
report is the ATE with a confidence interval and the estimated value of the learned policy.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from shared import architectures
from shared.architectures.counterfactual import dropout_masks
from shared.architectures.tabular import encoder_model
from shared.data.tabular import fit_columns, infer_schema, records
from shared.errors import UserError
from shared.tasks import Data, DataInfo, end_to_end, read_inputs, trained_part
from shared.training.config import layer_widths

IHDP_COVARIATES = ("bw", "b.head", "preterm", "birth.o", "nnhealth", "momage", "sex", "twin", "b.marr", "mom.lths",
                   "mom.hs", "mom.scoll", "cig", "first", "booze", "drugs", "work.dur", "prenatal", "site1", "site2",
                   "site3", "site4", "site5", "site6", "site7")
SPLIT = {"train": 0, "val": 1, "test": 2}
INTENDED_USE = ("Research and teaching: estimating heterogeneous treatment effects on benchmark data. "
                "Not for choosing any patient's treatment; effects learned from observational data are "
                "only as good as the assumption that every confounder was measured.")


def ihdp(realisations, start=0):
    """(covariate frame, treatment [N], outcomes [N, R], true effects [N, R]) of IHDP surface B."""
    import pandas as pd
    from econml.data.dgps import ihdp_surface_B

    outcomes, effects = [], []
    for k in range(start, start + realisations):
        y, t, x, tau = ihdp_surface_B(random_state=k)
        outcomes.append(y)
        effects.append(tau)
    frame = pd.DataFrame(x[:, 1:], columns=list(IHDP_COVARIATES))  # column 0 is econml's intercept
    return frame, t.astype(np.float32), np.stack(outcomes, 1).astype(np.float32), np.stack(effects, 1).astype(np.float32)


def realisation_splits(n, realisations, start=0):
    """[N, R] split codes (0 train, 1 val, 2 test): each realisation its own 63/27/10 split."""
    codes = np.zeros((n, realisations), np.int32)
    for r in range(realisations):
        order = np.random.default_rng(10_000 + start + r).permutation(n)
        test, val = int(round(0.1 * n)), int(round(0.27 * n))
        codes[order[:test], r] = 2
        codes[order[test:test + val], r] = 1
    return codes


def user_csv(cfg):
    """A user's table as (frame, t, y [N, 1]); R bootstrap copies share it."""
    import pandas as pd

    from apps.healthcare.records import user_csv as read_table

    table = read_table(cfg.data[4:], cfg.outcome or "")
    frame = table.frame
    for flag, column in (("--treatment", cfg.treatment), ("--outcome", cfg.outcome)):
        if not column:
            raise UserError(f"--data {cfg.data}: pass {flag} COLUMN")
        if column not in frame.columns:
            raise UserError(f"{flag} {column}: no such column in {cfg.data[4:]}")
    t = pd.to_numeric(frame[cfg.treatment], errors="coerce")
    if t.isna().any() or not set(t.unique()) <= {0, 1}:
        raise UserError(f"--treatment {cfg.treatment}: expected 0/1 values (1 = treated)")
    if t.nunique() < 2:
        raise UserError(f"--treatment {cfg.treatment}: every record has the same treatment; no effect can be learned")
    y = pd.to_numeric(frame[cfg.outcome], errors="coerce")
    if y.isna().any():
        raise UserError(f"--outcome {cfg.outcome}: expected numbers; got '{frame[cfg.outcome][y.isna()].iloc[0]}'")
    return frame.drop(columns=[cfg.treatment, cfg.outcome]), t.to_numpy(np.float32), y.to_numpy(np.float32)[:, None]


def build_treatment_data(cfg):
    if cfg.data == "ihdp":
        frame, t, y, tau = ihdp(cfg.realisations)
        codes = realisation_splits(len(frame), cfg.realisations)
        weights = (codes == SPLIT["train"]).astype(np.float32)
        source, truth = f"IHDP surface B, realisations 0-{cfg.realisations - 1} (econml)", True
    elif cfg.data.startswith("csv:"):
        frame, t, y_one = user_csv(cfg)
        codes = np.repeat(realisation_splits(len(frame), 1), cfg.realisations, axis=1)
        rng = np.random.default_rng(cfg.seed)
        train_rows = np.where(codes[:, 0] == 0)[0]
        weights = np.zeros(codes.shape, np.float32)
        for r in range(cfg.realisations):  # bootstrap counts of the training rows, per copy
            np.add.at(weights[:, r], rng.choice(train_rows, len(train_rows)), 1.0)
        y, tau = np.repeat(y_one, cfg.realisations, axis=1), np.zeros((len(frame), cfg.realisations), np.float32)
        source, truth = cfg.data, False
    else:
        raise UserError(f"--data {cfg.data}: expected ihdp or csv:PATH")
    if len(frame) < 30:
        raise UserError(f"--data {cfg.data}: {len(frame)} records; a treatment model needs at least 30")
    columns = infer_schema(frame, None, where=f"--data {cfg.data}")
    fit_columns(frame[codes[:, 0] == 0], columns)
    train = weights > 0
    mean = np.array([y[train[:, r], r].mean() for r in range(y.shape[1])], np.float32)
    std = np.array([y[train[:, r], r].std() or 1.0 for r in range(y.shape[1])], np.float32)
    treated = np.array([t[train[:, r]].mean() for r in range(y.shape[1])], np.float32)
    x = records(frame, columns)

    def dataset(split):
        mask = weights if split == "train" else (codes == SPLIT[split]).astype(np.float32)
        return tf.data.Dataset.from_tensor_slices((x, {"y": y, "t": t, "mask": mask, "tau": tau, "split": codes,
                                                       "train_weight": weights}))

    # IHDP is small: an epoch is `--passes` passes over the records, so the per-epoch
    # validation and checkpoint do not dominate the training time.
    train = dataset("train").repeat(cfg.passes)
    saved = {"y_mean": mean.tolist(), "y_std": std.tolist(), "treated_fraction": treated.tolist(),
             "truth": truth, "copies": int(y.shape[1]), "export_copies": [0] if truth else list(range(y.shape[1]))}
    names = ", ".join(f"`{c.input}`" for c in columns[:6]) + (", …" if len(columns) > 6 else "")
    info = DataInfo(
        input_shape=(len(columns),), input_dtype="record", num_train=len(frame) * cfg.passes, num_val=len(frame),
        num_test=len(frame), source=f"{source}; {len(frame)} records, {cfg.passes} passes per epoch",
        preprocess=encoder_model(columns),
        extra={"saved": saved, "intended_use": INTENDED_USE,
               "limitations": ["Identification rests on no unmeasured confounding and overlap; neither can be "
                               "checked from the data alone.",
                               "IHDP's outcomes are simulated (Hill's response surface B) on real covariates; "
                               "figures on it say how well effects are recovered, not how an intervention works."],
               "provenance": {"provenance": "Infant Health and Development Program covariates (Brooks-Gunn et "
                                            "al., 1992) with Hill's (2011) response surface B, as shipped in econml "
                                            "0.17 (`econml.data.dgps.ihdp_surface_B`)" if truth else cfg.data,
                              "licence": "econml: MIT" if truth else "the user's",
                              "export": ("realisation 0's network (the other copies are benchmark realisations)"
                                         if truth else f"the mean of {y.shape[1]} bootstrap copies")},
               "usage": [f"SavedModel `serving_default({names} float32[N] each) -> {{\"y0\", \"y1\", \"effect\", "
                         "\"propensity\": float32[N]}}` (effect = y1 - y0, in the outcome's units)",
                         "`dl-health recommend RUN patients.csv` (treatment, expected benefit and its interval)"]})
    return Data(train, dataset("val"), dataset("test"), info)


def build_treatment_model(cfg, info):
    copies = info.extra["saved"]["copies"]
    width = int(info.preprocess.outputs[0].shape[-1])
    overrides = {}
    if cfg.representation:
        overrides["representation"] = layer_widths(cfg.representation, "representation")
    if cfg.head:
        overrides["head"] = layer_widths(cfg.head, "head")
    return architectures.build(cfg.model, input_dim=width, copies=copies, dropout=cfg.dropout, **overrides)


def _ipm(phi, t, mask, kind):
    """Per-copy distance between the treated and control representations in a batch: linear
    MMD or the entropic (Sinkhorn) Wasserstein-1 of the CFR paper's code (λ = 10, 10 iterations,
    transport plan held constant). phi [B, R, d], t [B], mask [B, R] -> [R]."""
    a = mask * t[:, None]
    b = mask * (1 - t)[:, None]
    a = a / tf.maximum(tf.reduce_sum(a, 0, keepdims=True), 1e-6)
    b = b / tf.maximum(tf.reduce_sum(b, 0, keepdims=True), 1e-6)
    if kind == "mmd":
        gap = tf.einsum("br,brd->rd", a, phi) - tf.einsum("br,brd->rd", b, phi)
        return tf.reduce_sum(gap ** 2, -1)
    p = tf.transpose(phi, [1, 0, 2])  # [R, B, d]
    sq = tf.reduce_sum(p ** 2, -1)
    cost = tf.sqrt(tf.maximum(sq[:, :, None] + sq[:, None, :] - 2 * tf.einsum("rid,rjd->rij", p, p), 1e-10))
    scale = tf.stop_gradient(tf.reduce_mean(cost, axis=[1, 2], keepdims=True))
    kernel = tf.exp(-10.0 * cost / tf.maximum(scale, 1e-6))
    a, b = tf.transpose(a)[:, :, None], tf.transpose(b)[:, :, None]  # [R, B, 1]
    v = tf.ones_like(b)
    for _ in range(10):
        u = a / tf.maximum(tf.matmul(kernel, v), 1e-12)
        v = b / tf.maximum(tf.matmul(kernel, u, transpose_a=True), 1e-12)
    plan = tf.stop_gradient(u * kernel * tf.transpose(v, [0, 2, 1]))
    return tf.reduce_sum(plan * cost, axis=[1, 2])


def treatment_loss(cfg, info):
    """Per-example loss, averaged over copies (each copy counts its own rows only):
    factual squared error on the standardised outcome (CFR: weighted by 1/(2u) or 1/(2(1-u)),
    u the treated share), the propensity head's cross-entropy, Dragonnet's targeted
    regularisation β(y - Q̃)², and CFR's IPM α·IPM spread evenly over the batch."""
    saved = info.extra["saved"]
    mean, std = tf.constant(saved["y_mean"]), tf.constant(saved["y_std"])
    u = tf.constant(saved["treated_fraction"])
    copies = float(saved["copies"])

    def loss(y, pred):
        t, mask = tf.cast(y["t"], tf.float32)[:, None], tf.cast(y["mask"], tf.float32)
        target = (y["y"] - mean) / std
        factual = t * pred["y1"] + (1 - t) * pred["y0"]
        weight = t / (2 * u) + (1 - t) / (2 * (1 - u)) if cfg.model == "cfr" else 1.0
        g = tf.clip_by_value(pred["propensity"], 1e-3, 1 - 1e-3)
        terms = weight * (target - factual) ** 2 - (t * tf.math.log(g) + (1 - t) * tf.math.log(1 - g))
        if cfg.model == "dragonnet":
            g_clipped = tf.clip_by_value(g, 0.01, 0.99)
            q = factual + pred["epsilon"] * (t / g_clipped - (1 - t) / (1 - g_clipped))
            terms += cfg.targeted_beta * (target - q) ** 2
        per_example = tf.reduce_sum(mask * terms, -1) / copies
        if cfg.model == "cfr" and cfg.alpha:
            ipm = _ipm(pred["phi"], tf.cast(y["t"], tf.float32), mask, cfg.ipm)
            per_example += cfg.alpha * tf.reduce_mean(ipm) / tf.cast(tf.shape(t)[0], tf.float32)
        return per_example

    return loss


def _in_units(net_out, saved, copies=None):
    """y0, y1 (and propensity) of the given copies in the outcome's units: [..., len(copies)]."""
    index = list(range(saved["copies"])) if copies is None else list(copies)
    mean = tf.gather(tf.constant(saved["y_mean"]), index)
    std = tf.gather(tf.constant(saved["y_std"]), index)
    pick = lambda v: tf.gather(v, index, axis=-1)  # noqa: E731
    out = {"y0": mean + std * pick(net_out["y0"]), "y1": mean + std * pick(net_out["y1"]),
           "propensity": pick(net_out["propensity"])}
    if "epsilon" in net_out:
        out["epsilon"] = std * pick(net_out["epsilon"])
    return out


def targeted_effect(outputs):
    """Dragonnet's targeted-regularisation estimate (Shi et al., 2019): Q̃(t, x) = Q(t, x) +
    ε·(t/g − (1 − t)/(1 − g)), so τ̃ = τ̂ + ε·(1/g + 1/(1 − g)); None where ε was not learned
    (TARNet, CFR: it stays 0)."""
    if not np.any(outputs.get("epsilon", 0.0)):
        return None
    g = np.clip(outputs["propensity"], 0.01, 0.99)
    return outputs["y1"] - outputs["y0"] + outputs["epsilon"] * (1 / g + 1 / (1 - g))


@keras.saving.register_keras_serializable(package="dlsuite")
class CopyReadout(keras.layers.Layer):
    """The exported copies' outcomes in the outcome's units, averaged over the copies:
    {"y0", "y1", "effect", "propensity": [N]}."""

    def __init__(self, y_mean, y_std, copies, **kwargs):
        super().__init__(**kwargs)
        self.y_mean, self.y_std, self.copies = list(y_mean), list(y_std), list(copies)

    def call(self, y0, y1, propensity):
        saved = {"y_mean": self.y_mean, "y_std": self.y_std, "copies": len(self.y_mean)}
        out = _in_units({"y0": y0, "y1": y1, "propensity": propensity}, saved, self.copies)
        out = {k: tf.reduce_mean(v, -1) for k, v in out.items()}
        return {"y0": out["y0"], "y1": out["y1"], "effect": out["y1"] - out["y0"], "propensity": out["propensity"]}

    def get_config(self):
        return {**super().get_config(), "y_mean": self.y_mean, "y_std": self.y_std, "copies": self.copies}


def treatment_core(model, info):
    """features float32 [N, F] -> {"y0", "y1", "effect", "propensity"} (TFLite): only the
    exported copies' weights (IHDP: realisation 0's network, not all R)."""
    saved = info.extra["saved"]
    copies = saved["export_copies"]
    features = keras.Input(shape=(int(info.preprocess.outputs[0].shape[-1]),), name="features")
    out = model.subset(copies)(features)
    readout = CopyReadout([saved["y_mean"][c] for c in copies], [saved["y_std"][c] for c in copies],
                          list(range(len(copies))), name="readout")
    return keras.Model(features, readout(out["y0"], out["y1"], out["propensity"]), name="treatment_core")


def treatment_serving(model, info):
    """`serving_default(<covariate>: float32[N], …) -> {"y0", "y1", "effect", "propensity"}`."""
    return end_to_end(treatment_core(trained_part(model), info), info)


def _collect(model, ds, info):
    """Every copy's effect estimate [N, R] (outcome units), the targets, and the propensity."""
    e2e = end_to_end(model, info)
    call = tf.function(lambda x: e2e(x, training=False), reduce_retracing=True)
    saved = info.extra["saved"]
    parts, targets = [], []
    for x, y in ds.batch(1024):
        parts.append({k: v.numpy() for k, v in _in_units(call(x), saved).items()})
        targets.append({k: v.numpy() for k, v in y.items()})
    cat = lambda rows, k: np.concatenate([r[k] for r in rows])  # noqa: E731
    return ({k: cat(parts, k) for k in parts[0]}, {k: cat(targets, k) for k in targets[0]})


def effect_metrics(tau_hat, tau, codes):
    """√PEHE, ATE error and policy regret (treat where the estimated effect > 0) of each
    realisation, in-sample (train + validation rows) and out-of-sample (test rows), averaged
    over realisations with standard errors."""
    per = {f"{m}_{s}": [] for m in ("pehe", "ate_error", "policy_regret") for s in ("in", "out")}
    for r in range(tau.shape[1]):
        for side, rows in (("in", codes[:, r] < 2), ("out", codes[:, r] == 2)):
            err = tau_hat[rows, r] - tau[rows, r]
            per[f"pehe_{side}"].append(float(np.sqrt(np.mean(err ** 2))))
            per[f"ate_error_{side}"].append(float(abs(np.mean(err))))
            wrong = (tau_hat[rows, r] > 0) != (tau[rows, r] > 0)
            per[f"policy_regret_{side}"].append(float(np.mean(np.abs(tau[rows, r]) * wrong)))
    out = {}
    for k, values in per.items():
        out[k] = float(np.mean(values))
        out[f"{k}_se"] = float(np.std(values) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    out["realisations"] = int(tau.shape[1])
    return out


def treatment_report(model, ds, info, plots_dir):
    """IHDP: effect metrics over realisations and an estimated-vs-true effect plot; users'
    data: the AIPW ATE with a 95 % interval and the IPW value of the learned policy."""
    saved = info.extra["saved"]
    outputs, y = _collect(trained_part(model), ds, info)
    tau_hat = outputs["y1"] - outputs["y0"]
    if saved["truth"]:
        from shared.evaluation.plots import scatter_png

        result = effect_metrics(tau_hat, y["tau"], y["split"])
        targeted = targeted_effect(outputs)
        if targeted is not None:
            result.update({f"targeted_{k}": v for k, v in effect_metrics(targeted, y["tau"], y["split"]).items()
                           if k.startswith("ate_error")})
        test = y["split"][:, 0] == 2
        plots = [scatter_png(y["tau"][test, 0], tau_hat[test, 0], os.path.join(plots_dir, "effect_vs_true.png"),
                             title="Estimated vs true effect (realisation 0, test)")]
        return result, plots
    return observational_summary(outputs, y), []


def observational_summary(outputs, y):
    """The doubly robust (AIPW) ATE with a 95 % normal interval, each record scored only by
    the copies that did not train on it (out-of-bag, so the residual correction is honest),
    and the inverse-propensity estimate of the value of treating where the estimated effect
    is positive, beside treating everyone and no one."""
    t, outcome = y["t"][:, None], y["y"]
    e = np.clip(outputs["propensity"], 0.01, 0.99)
    mu0, mu1 = outputs["y0"], outputs["y1"]
    psi = mu1 - mu0 + t * (outcome - mu1) / e - (1 - t) * (outcome - mu0) / (1 - e)
    held_out = y["train_weight"] == 0
    scored = held_out.any(1)
    per_record = (psi * held_out).sum(1)[scored] / held_out.sum(1)[scored]
    ate, se = float(per_record.mean()), float(per_record.std() / np.sqrt(len(per_record)))
    policy = (mu1 - mu0).mean(1) > 0
    p_t = np.where(t[:, 0] == 1, e.mean(1), 1 - e.mean(1))
    value = float(np.mean((policy == (t[:, 0] == 1)) * outcome[:, 0] / p_t))
    return {"ate": ate, "ate_ci_low": ate - 1.96 * se, "ate_ci_high": ate + 1.96 * se,
            "ate_plug_in": float((mu1 - mu0).mean()), "ate_records": int(len(per_record)),
            "policy_value": value, "treat_all_value": float(np.mean(t[:, 0] * outcome[:, 0] / e.mean(1))),
            "treat_none_value": float(np.mean((1 - t[:, 0]) * outcome[:, 0] / (1 - e.mean(1)))),
            "share_recommended": float(policy.mean()), "records": int(len(t))}


def decode_effects(outputs, info):
    return [{"y0": float(a), "y1": float(b), "effect": float(c), "propensity": float(d),
             "summary": f"effect {c:+.3f} (y0 {a:.3f}, y1 {b:.3f}; propensity {d:.2f})"}
            for a, b, c, d in zip(outputs["y0"], outputs["y1"], outputs["effect"], outputs["propensity"])]


def effect_samples(model, info, features, samples=50, seed=0):
    """Monte Carlo dropout effect samples [S × exported copies, N] (outcome units)."""
    net = trained_part(model)
    saved = info.extra["saved"]
    masks = dropout_masks(net, samples, seed, max(net.dropout, 0.1)) if net.dropout else None
    out = net(tf.constant(features), masks=masks) if masks else {k: v[None] for k, v in net(tf.constant(features)).items()}
    units = _in_units(out, saved, saved["export_copies"])
    effect = (units["y1"] - units["y0"]).numpy()  # [S, N, C]
    return np.moveaxis(effect, 1, -1).reshape(-1, effect.shape[1])


def recommend_command(run, task, cfg, info, args):
    """Each record's recommended arm, its expected benefit (the effect in the good direction)
    and a 95 % interval over Monte Carlo dropout samples (and the bootstrap copies)."""
    from apps.healthcare.risk import load_records
    from shared.training.runs import load_model

    if run.task != "treatment":
        raise UserError(f"{run.path}: a {run.task} run; dl-health recommend takes treatment runs")
    names, _, batch = read_inputs(load_records, [args.patients], info)
    features = np.asarray(info.preprocess(batch))
    samples = effect_samples(load_model(run), info, features)
    sign = -1.0 if args.lower_is_better else 1.0
    benefit = sign * samples
    for i, name in enumerate(names):
        mean = float(benefit[:, i].mean())
        low, high = (float(v) for v in np.percentile(benefit[:, i], [2.5, 97.5]))
        arm = "treat" if mean > 0 else "do not treat"
        row = {"input": name, "recommendation": arm, "expected_benefit": abs(mean),
               "benefit_of_treating": mean, "interval_95": [low, high], "confident": bool(low > 0 or high < 0)}
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{row['input']}: {arm}; benefit of treating {mean:+.3f} (95 % {low:+.3f} to {high:+.3f})"
                  + ("" if row["confident"] else " — the interval includes no effect"))
