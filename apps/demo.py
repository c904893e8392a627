"""`dlsuite demo` / `make demo`: the suite's main job, end to end on embedded data."""

import os
import time

from shared.training import engine, runs


def demo(tiny=False):
    """Trains the default Fashion-MNIST classifier, evaluates it, exports SavedModel + float
    and int8 TFLite, verifies them and prints a summary."""
    from apps.vision.tasks import TASKS, ClassifyConfig

    cfg = ClassifyConfig.tiny() if tiny else ClassifyConfig()
    cfg.export, cfg.quantize = "savedmodel,tflite", "none,int8"
    t0 = time.perf_counter()
    run = engine.train("vision", "classify", TASKS.get("classify")(), cfg)
    minutes = (time.perf_counter() - t0) / 60
    metrics = runs.read_metrics(run)
    test = metrics["test"]
    print("\n=== dlsuite demo: Fashion-MNIST classification ===")
    print(f"model            {cfg.model} ({cfg.epochs} epochs max, best epoch {metrics['best_epoch']})")
    print(f"test accuracy    {test['accuracy']:.4f} on {test['num_examples']} held-out images "
          f"(macro F1 {test['macro_f1']:.4f})")
    print(f"training time    {metrics['train_seconds'] / 60:.1f} min (whole demo {minutes:.1f} min)")
    for name, result in metrics.get("exports", {}).items():
        print(f"{name:16s} {result['size_bytes'] / 1e6:.2f} MB, batch-1 latency {result['latency_ms_batch1']:.2f} ms, "
              f"top-1 agreement {result['top1_agreement']:.4f} -> {'verified' if result['passed'] else 'FAILED'}")
    print(f"run directory    {run.path}")
    print(f"model card       {os.path.join(run.path, 'model_card.md')}")
    print(f"TensorBoard      .venv/bin/dlsuite tensorboard   (then open http://127.0.0.1:6006)")
    return run
