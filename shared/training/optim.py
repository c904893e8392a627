"""Optimizer and learning-rate schedule from a TrainConfig."""

import keras

from shared.errors import UserError


def learning_rate(cfg, steps_per_epoch):
    """A float or a keras schedule for `--lr-schedule` (warmup only with cosine)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = cfg.warmup_epochs * steps_per_epoch
    if cfg.warmup_epochs and cfg.lr_schedule != "cosine":
        raise UserError("--warmup-epochs: only supported with --lr-schedule cosine")
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                0.0, decay_steps=max(1, total - warmup), warmup_target=cfg.learning_rate,
                warmup_steps=warmup, alpha=0.01)
        return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=total, alpha=0.01)
    return keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate, decay_steps=steps_per_epoch, decay_rate=0.9)


def build_optimizer(cfg, steps_per_epoch):
    """The `--optimizer` with its schedule; wrapped for loss scaling under mixed_float16."""
    lr = learning_rate(cfg, steps_per_epoch)
    if getattr(cfg, "freeze_epochs", 0):  # transfer: the head alone at the full rate, then everything at a lower one
        from shared.training.transfer import FineTuneSchedule

        lr = FineTuneSchedule(lr, cfg.freeze_epochs * steps_per_epoch, cfg.fine_tune_lr_factor)
    wd = cfg.weight_decay or None
    if cfg.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, beta_1=cfg.momentum, weight_decay=wd)
    elif cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, beta_1=cfg.momentum, weight_decay=cfg.weight_decay or 0.004)
    elif cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, weight_decay=wd)
    elif cfg.optimizer == "rmsprop":
        opt = keras.optimizers.RMSprop(lr, momentum=cfg.momentum, weight_decay=wd)
    else:
        raise UserError(f"--optimizer: unknown optimizer '{cfg.optimizer}'")
    if cfg.precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def current_learning_rate(optimizer):
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(inner.learning_rate))
