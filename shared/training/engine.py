"""Runs a task end to end: strategy, data, model, training with resume, evaluation, export, card."""

import hashlib
import os
import time

import keras
import numpy as np

from shared.errors import UserError
from shared.tasks import end_to_end, load_data
from shared.training import config as config_lib
from shared.training import rundir
from shared.training.precision import MEASURE, measured_precision, resolve_precision
from shared.training.runs import PREPROCESS_FILE, data_info_dict, load_model, read_metrics, save_model, write_metrics
from shared.training.strategy import is_chief, resolve_strategy
from shared.training.tensorboard import TensorBoardLogger
from shared.training.trainer import Trainer, TrainingDiverged


def _select_run(app, task_name, config_dict, run_name):
    """Resumes an unfinished run with the same config, or starts a new one."""
    run_name = run_name or os.environ.get("DLSUITE_RUN_NAME")
    if run_name:
        run = rundir.RunDir(app, task_name, run_name)
        info = run.read_info()
        if not info:
            return run, False
        if run.read_config() != config_dict:
            raise UserError(f"--run-name {run_name}: {run.path} exists with a different config; "
                            "choose another run name")
        if info.get("status") != "running":
            raise UserError(f"--run-name {run_name}: {run.path} already ended ({info.get('status')}); "
                            "choose another run name")
        return run, True
    run = rundir.unfinished_run_with_config(app, task_name, config_dict)
    if run is not None:
        return run, True
    return rundir.RunDir(app, task_name, rundir.new_run_id()), False


def train(app, task_name, task, cfg, run_name=None, verbose=True):
    """Trains (or resumes) a run and, on the chief, evaluates, exports and documents it."""
    task = task.for_config(cfg)
    strategy = resolve_strategy(cfg.distribution, cfg.cpu_replicas, cfg.tpu)
    if cfg.distribution == "multi_worker" and not (run_name or os.environ.get("DLSUITE_RUN_NAME")):
        raise UserError("--distribution multi_worker: pass --run-name so every worker writes the same run")
    cfg = resolve_init_from(task, cfg, verbose)
    keras.utils.set_random_seed(cfg.seed)
    precision = resolve_precision(cfg.precision, tpu=type(strategy).__name__.startswith("TPU"))
    keras.mixed_precision.set_global_policy("float32" if precision == MEASURE else precision)
    config_dict = config_lib.to_dict(cfg)
    run, resuming = _select_run(app, task_name, config_dict, run_name)
    chief = is_chief(strategy)
    # Everything a user can get wrong (data, --model, --batch-size) is checked before the run exists.
    data = load_data(task, cfg)
    precision, precision_auto = choose_precision(app, task_name, task, cfg, data, strategy, run if resuming else None,
                                                precision, verbose and chief)
    trainer = Trainer.for_task(task, cfg, data, strategy, run.file("checkpoints"), optimizer_precision=precision,
                               history=run.read_history() if resuming else (), verbose=verbose)
    if getattr(cfg, "init_from", "") and not resuming:
        _init_from(trainer.model, cfg.init_from, verbose and chief, getattr(cfg, "freeze_epochs", 0))
    if chief and not resuming:
        os.makedirs(run.path, exist_ok=True)
        run.write_config(config_lib.dump_yaml(cfg))
        run.write_info(status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S"),
                       strategy=type(strategy).__name__, replicas=strategy.num_replicas_in_sync,
                       precision=precision, **({"precision_auto": precision_auto} if precision_auto else {}),
                       data_info=data_info_dict(data.info))
        if data.info.preprocess is not None:
            save_model(data.info.preprocess, run.file(PREPROCESS_FILE))
    logger = TensorBoardLogger(run.logs) if chief else None
    trainer.logger = logger
    try:
        done = trainer.restore()
        if verbose and chief:
            print(f"{'Resuming' if done else 'Starting'} run {run.path}"
                  + (f" after epoch {done}/{cfg.epochs}" if done else "")
                  + f" ({type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s))", flush=True)
        if chief and not done:
            logger.hparams(config_dict, run.run_id)
        t0 = time.perf_counter()
        history = _fit_rounds(trainer, task, cfg, run, chief)
    except TrainingDiverged as e:
        if chief:
            run.write_info(status="diverged", error=str(e))
        kept = (f"the last good checkpoint (epoch {int(trainer.epoch.numpy())}) is kept in "
                f"{run.file('checkpoints', 'last')}" if int(trainer.epoch.numpy()) else "no epoch had completed")
        raise UserError(f"training diverged: {e}; {kept}") from None
    except BaseException:
        if chief and not resuming and not int(trainer.epoch.numpy()):
            _discard(run)  # nothing worth resuming: leave no half-made run behind
        raise
    model = trainer.model
    fingerprint = weights_fingerprint(model)
    if verbose:
        print(f"Final weights fingerprint: {fingerprint}", flush=True)
    if not chief:
        return run
    best_epoch = trainer.restore_best()
    model = float32_copy(task, cfg, data.info, model)
    calibration = task.calibrate(model, data) if task.calibrate else None
    save_model(model, run.file("model.keras"))
    summary = {"best_epoch": best_epoch, "epochs_run": len(history), **({"calibration": calibration} if calibration else {}),
               "train_seconds_this_session": round(time.perf_counter() - t0, 2),
               "train_seconds": round(sum(r["seconds"] for r in history), 2),
               "final_epoch": history[-1] if history else {}}
    evaluate_run(run, task, cfg, model=model, data=data, extra=summary, logger=logger, verbose=verbose)
    # Training is complete whatever the exports do: a failed export is recorded in metrics.json
    # and retried with `export RUN`, never by resuming the run.
    run.write_info(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), best_epoch=best_epoch,
                   data_info=data_info_dict(data.info))
    if cfg.export:
        from shared.export.run_export import export_run_dir

        export_run_dir(run, task, cfg, model=model, data=data,
                       formats=cfg.export.split(","), quantize=cfg.quantize.split(","), verbose=verbose)
    return run


def choose_precision(app, task_name, task, cfg, data, strategy, resumed_run, precision, verbose):
    """(policy, record) where `--precision auto` must decide: a resumed run keeps the policy it
    started with; a task that loses accuracy in bfloat16 keeps float32 (its record says why);
    else the measured, cached decision for this machine and model family. The policy is set."""
    record = None
    if cfg.precision == "auto" and task.float32_reason:
        precision, record = "float32", {"policy": "float32", "reason": task.float32_reason}
    elif resumed_run is not None and precision == MEASURE and resumed_run.read_info().get("precision"):
        precision = resumed_run.read_info()["precision"]
    elif precision == MEASURE:
        family = f"{app}:{task_name}:{getattr(cfg, 'model', '')}:batch {cfg.batch_size}"
        precision, record = measured_precision(task, cfg, data, strategy, family, verbose)
        keras.utils.set_random_seed(cfg.seed)  # the real model starts as it would without the measurement
    keras.mixed_precision.set_global_policy(precision)
    return precision, record


def float32_copy(task, cfg, info, model):
    """A model trained under a mixed precision policy, rebuilt in float32 with its weights
    (mixed precision keeps float32 variables): what is saved, evaluated and exported computes
    in float32 everywhere (TFLite has no bfloat16 kernels). A float32 model is returned as is."""
    if keras.mixed_precision.global_policy().name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    copy = task.model(cfg, info)
    copy.set_weights(model.get_weights())
    return copy


def _discard(run):
    """Removes a run that never completed an epoch (its run and log directories)."""
    import shutil

    for path in (run.path, run.logs):
        shutil.rmtree(path, ignore_errors=True)


def resolve_init_from(task, cfg, verbose):
    """`cfg` with `--init-from auto` made the run the task names (`Task.pretrained`) or ""
    (from scratch), saying which; the run records the path it started from."""
    import dataclasses

    if getattr(cfg, "init_from", "") != "auto":
        return cfg
    path, why = task.pretrained(cfg) if task.pretrained else ("", "this task has no pretrained model")
    if verbose:
        print(why, flush=True)
    return dataclasses.replace(cfg, init_from=path)


def _init_from(model, path, verbose, freeze_epochs=0):
    """`--init-from RUN`: copies the run's weights (all but the head) into `model`."""
    from shared.training.rundir import open_run
    from shared.training.transfer import head_layer, transfer_weights

    if freeze_epochs:
        try:
            head_layer(model)
        except ValueError:
            raise UserError("--freeze-epochs: only a classifier (a Dense head) trains its head alone; "
                            "this model fine-tunes every layer from the start") from None

    try:
        source = load_model(open_run(path))
    except UserError as e:
        raise UserError(f"--init-from {path}: {e}") from None
    try:
        copied, missed = transfer_weights(model, source)
    except ValueError as e:
        raise UserError(f"--init-from {path}: {e}") from None
    if not copied:
        raise UserError(f"--init-from {path}: none of its layers matches this model's by name and shape")
    if verbose:
        print(f"Initialised {len(copied)} layers from {path}; new: {', '.join(missed)}", flush=True)


def _fit_rounds(trainer, task, cfg, run, chief):
    """`cfg.epochs` epochs (the first `cfg.freeze_epochs` with all but the head frozen), then,
    for a task that grows its data (`task.grow`), one more round of `cfg.epochs` on the grown
    data per `cfg.dagger_rounds`. A resumed run reloads the rounds' grown data from the run
    directory and continues in the round it was in."""
    on_epoch_end = None
    if chief:
        def on_epoch_end(history):
            run.write_history(history)
            if task.epoch_plots is not None:  # e.g. a GAN's samples, one picture per epoch in TensorBoard
                plots = task.epoch_plots(trainer.model, trainer.data.info, run.file("plots"), history[-1]["epoch"])
                trainer.logger.images(plots, history[-1]["epoch"])
    freeze = getattr(cfg, "freeze_epochs", 0)
    if freeze and int(trainer.epoch.numpy()) < freeze:  # transfer: the head alone first
        from shared.training.transfer import set_backbone_frozen

        set_backbone_frozen(trainer.model, True)
        trainer.retrace()
        trainer.fit(on_epoch_end=on_epoch_end, until=freeze)
        set_backbone_frozen(trainer.model, False)
        trainer.retrace()
    rounds = getattr(cfg, "dagger_rounds", 0) if task.grow else 0
    resumed_round = trainer.history[-1].get("round", 0) if trainer.history else 0
    history = trainer.fit(on_epoch_end=on_epoch_end) if resumed_round == 0 else trainer.history
    for r in range(1, rounds + 1):
        trainer.use_data(task.grow(trainer.model, trainer.data, r, run.file("rounds"), cfg))
        if r >= resumed_round:
            history = trainer.fit(on_epoch_end=on_epoch_end, until=cfg.epochs * (r + 1), round=r)
    return history


def weights_fingerprint(model):
    """sha256 of the trainable weights: equal on every worker after synchronous training
    (BatchNorm moving statistics are per replica, so they are left out)."""
    digest = hashlib.sha256()
    for weight in model.trainable_weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


def evaluate_run(run, task, cfg, model=None, data=None, extra=None, logger=None, verbose=True):
    """Final evaluation on the test split: `metrics.json`, plots, TensorBoard images, card."""
    model = model or load_model(run)
    if data is None:  # re-evaluating a finished run: what was fitted after training comes from the run
        data = load_data(task, cfg)
        saved = ((run.read_info().get("data_info") or {}).get("extra") or {}).get("saved")
        if saved:
            data.info.extra["saved"] = {**data.info.extra.get("saved", {}), **saved}
    plots_dir = run.file("plots")
    os.makedirs(plots_dir, exist_ok=True)
    test_metrics, plots = task.metrics(end_to_end(model, data.info), data.test, data.info, plots_dir)
    metrics = {**read_metrics(run), **(extra or {}), "test": test_metrics,
               "data": {"source": data.info.source, "num_train": data.info.num_train,
                        "num_val": data.info.num_val, "num_test": data.info.num_test}}
    write_metrics(run, metrics)
    logger = logger or TensorBoardLogger(run.logs)
    logger.images(plots, step=metrics.get("best_epoch", 0))
    logger.scalars("evaluation", {f"test_{k}": v for k, v in test_metrics.items()}, step=metrics.get("best_epoch", 0))
    logger.texts(test_metrics, step=metrics.get("best_epoch", 0))
    from shared.export.run_export import write_card

    write_card(run, task, cfg, metrics, data.info)
    if verbose:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in test_metrics.items() if isinstance(v, float))
        print(f"Test: {shown}", flush=True)
    return metrics


