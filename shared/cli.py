"""The one command-line implementation of every `dl-<app>` (the suite's own `dlsuite` is
`apps/suite.py`, above the apps).

Every user mistake ends in one line on stderr (`dl-vision: error: …`) and exit code 2.
"""

import argparse
import importlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable

from shared.errors import UserError
from shared.terminal import quiet_native_stderr, wants_verbose

VERBOSE_HELP = ("TensorFlow's own messages go to a log file (see DLSUITE_NATIVE_LOG); "
                "--verbose anywhere or DLSUITE_VERBOSE=1 shows them on the terminal.")


class Parser(argparse.ArgumentParser):
    """argparse that reports mistakes in one line instead of usage + message."""

    def error(self, message):
        raise UserError(f"{message} (see --help)")


def _fail(prog, error):
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 2


def guard(prog, fn):
    """Runs `fn`, turning UserErrors and Ctrl-C into one line and a non-zero exit."""
    try:
        return fn() or 0
    except UserError as e:
        return _fail(prog, e)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


# --- dl-<app> --------------------------------------------------------------
def _task_parser(prog, task_name, config):
    from shared.training import config as config_lib

    parser = Parser(prog=f"{prog} train {task_name}", description=config.__doc__,
                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--config", metavar="FILE", help="YAML file of field: value, read before the flags")
    parser.add_argument("--tiny", action="store_true", help="the task's seconds-long smoke configuration")
    parser.add_argument("--run-name", metavar="NAME", help="run directory name (reuse it to resume)")
    parser.add_argument("--quiet", action="store_true", help="print only the run directory")
    for name, kind, default in config_lib.fields(config):
        choices = config_lib.CHOICES.get(name)
        parser.add_argument(f"--{config_lib.flag(name)}", dest=name, metavar=kind.__name__.upper(),
                            help=f"default: {default}" + (f" (one of {', '.join(choices)})" if choices else ""))
    return parser


@dataclass
class AppCommand:
    """An app's own command on a trained run (`dl-nlp generate RUN …`): `arguments(parser)`
    adds its flags (the run directory argument is added for it); `run(run, task, cfg, info,
    args)` does the work and raises UserError for a user's mistake. With `on_run=False`
    the command takes no run (`dl-speech synth`) and `run(args)` is called."""

    name: str
    help: str
    arguments: Callable
    run: Callable
    on_run: bool = True


def app_main(app, package, argv=None, commands=()):
    """`dl-<app>` over the app `package` (e.g. "apps.vision"): its `configs.CONFIGS` parse and
    check a training's flags before TensorFlow is imported (a mistake costs no start-up); its
    `tasks.TASKS` registry is imported only for the work itself."""
    prog = f"dl-{app}"
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_native_stderr(wants_verbose(argv))
    registry = lambda: importlib.import_module(f"{package}.tasks").TASKS  # noqa: E731 (imports TensorFlow)
    parser = Parser(prog=prog, description=f"dlsuite {app} app", epilog=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("tasks", help="list the tasks")
    p = sub.add_parser("train", help="train a task (flags: see 'train TASK --help')", add_help=False)
    p.add_argument("task")
    p = sub.add_parser("evaluate", help="evaluate a run on its test split")
    p.add_argument("run_dir")
    p = sub.add_parser("predict", help="predict inputs with a trained run")
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.add_argument("--out", metavar="DIR", help="write each rendered prediction as a PNG into DIR")
    p = sub.add_parser("explain", help="what a prediction rests on: heat maps (images), token or column attributions")
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--method", default=None, choices=("gradcam", "integrated_gradients"),
                   help="images: gradcam (default) or integrated_gradients; text: integrated_gradients")
    p.add_argument("--layer", default=None, help="Grad-CAM target layer (default: the last conv layer)")
    p.add_argument("--out", metavar="DIR", default="explanations", help="where the overlay PNGs go")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p = sub.add_parser("export", help="export a run (atomic, verified)")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, choices=("savedmodel", "tflite"))
    p.add_argument("--quantize", default="none", choices=("none", "dynamic", "float16", "int8"))
    own = {c.name: c for c in commands}
    for command in commands:
        p = sub.add_parser(command.name, help=command.help)
        if command.on_run:
            p.add_argument("run_dir")
        command.arguments(p)

    def run():
        args, rest = parser.parse_known_args(argv)
        if args.command != "train" and rest:
            raise UserError(f"unrecognized arguments: {' '.join(rest)}")
        if args.command == "tasks":
            for name, factory in registry().items():
                task = factory()
                print(f"{name:12s} {task.description}")
            return 0
        if args.command == "train":
            return _train(prog, app, package, args.task, rest)
        if args.command in own and not own[args.command].on_run:
            return own[args.command].run(args)
        from shared.training import engine

        from shared.training.runs import load_run

        run_dir, task, cfg, info = load_run(app, registry(), args.run_dir)
        if args.command == "evaluate":
            metrics = engine.evaluate_run(run_dir, task, cfg)
            print(json.dumps({k: v for k, v in metrics["test"].items() if not isinstance(v, (dict, list))}))
        elif args.command == "predict":
            _predict(run_dir, task, info, args.inputs, args.json, args.out)
        elif args.command == "explain":
            _explain(run_dir, task, info, args)
        elif args.command in own:
            own[args.command].run(run_dir, task, cfg, info, args)
        elif args.command == "export":
            from shared.export.run_export import export_run_dir

            results = export_run_dir(run_dir, task, cfg, formats=[args.format], quantize=[args.quantize])
            for name in results:
                print(os.path.join(run_dir.path, results[name].get("path", name)))
        return 0

    return guard(prog, run)


def _train(prog, app, package, task_name, rest):
    """Parses and checks the flags with the app's configs alone, then trains."""
    from shared.training import config as config_lib

    configs = importlib.import_module(f"{package}.configs").CONFIGS
    if task_name not in configs:
        raise UserError(f"unknown {app} task '{task_name}'; expected one of: {', '.join(sorted(configs))}")
    parser = _task_parser(prog, task_name, configs[task_name])
    if "-h" in rest or "--help" in rest:
        parser.print_help()
        return 0
    args = vars(parser.parse_args(rest))
    options = {k: args.pop(k) for k in ("config", "tiny", "run_name", "quiet") if k in args}
    cfg = config_lib.resolve(configs[task_name], tiny=options.get("tiny", False),
                             config_file=options.get("config"), overrides=args)
    from shared.training import engine

    task = importlib.import_module(f"{package}.tasks").TASKS.get(task_name)()
    run = engine.train(app, task_name, task, cfg, run_name=options.get("run_name"),
                       verbose=not options.get("quiet", False))
    print(f"Run directory: {run.path}")
    return 0


def _predict(run, task, info, inputs, as_json, out_dir=None):
    """Runs the task's serving model (post-processing included) on the user's files."""
    import numpy as np

    from shared.tasks import read_inputs
    from shared.training.runs import load_model

    model = load_model(run)
    if info is None:
        raise UserError(f"{run.path}: run.json has no data_info; retrain with this version")
    if out_dir and task.render is None:
        raise UserError(f"--out: {run.task} predictions have no rendering; use --json")
    names, raw, batch = read_inputs(task.load_input, inputs, info)
    serving = task.serving_model(model, info)
    outputs = {k: np.asarray(v) for k, v in serving(batch, training=False).items()}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    for path, x, prediction in zip(names, raw, task.decode(outputs, info)):
        if out_dir:
            stem = os.path.splitext(os.path.basename(path))[0]
            prediction["rendered"] = task.render(x, prediction, os.path.join(out_dir, f"{stem}.png"))
        if as_json:
            print(json.dumps({"input": path, **prediction}))
        elif "label" in prediction:
            print(f"{path}: {prediction['label']} ({prediction['confidence']:.3f})")
        else:
            print(f"{path}: {prediction.get('summary', json.dumps(prediction))}")


def _explain(run, task, info, args):
    """Grad-CAM / integrated-gradients overlays for a classifier run's predictions, or
    per-token integrated gradients for a text run."""
    import numpy as np

    from shared.explain import explain, overlay_png
    from shared.training.runs import load_model

    if task.explain is not None:
        return task.explain(run, load_model(run), info, args)
    if info is not None and info.input_dtype == "string" and info.preprocess is not None:
        return _explain_text(run, info, args)
    from shared.evaluation.classification import decode_probabilities

    if info is None or len(info.input_shape) != 3 or task.decode is not decode_probabilities:  # image classifiers
        raise UserError(f"{run.path}: explain works on image classifier and text runs; this is a {run.task} run")
    args.method = args.method or "gradcam"
    images = np.stack([task.load_input(path, info) for path in args.inputs])
    results = explain(load_model(run), images, method=args.method, layer=args.layer)
    os.makedirs(args.out, exist_ok=True)
    for path, image, r in zip(args.inputs, images, results):
        label = info.class_names[r["class_index"]]
        stem = os.path.splitext(os.path.basename(path))[0]
        written = overlay_png(image, r["heatmap"], os.path.join(args.out, f"{stem}_{args.method}.png"),
                              title=f"{label} ({args.method})")
        row = {"input": path, "label": label, "class_index": r["class_index"], "peak": r["peak"],
               "path": str(written), **({"layer": r["layer"]} if "layer" in r else {})}
        print(json.dumps(row) if args.json else f"{path}: {label}, peak at {tuple(r['peak'])} -> {written}")


def _explain_text(run, info, args):
    """Integrated gradients per token: coloured words on a terminal, or JSON lines."""
    import numpy as np

    from shared.data.text import vocabulary
    from shared.explain.tokens import colour_tokens, token_integrated_gradients
    from shared.training.runs import load_model

    if args.method == "gradcam" or args.layer:
        raise UserError("text runs are explained with integrated gradients only (no --method gradcam, --layer)")
    ids = np.asarray(info.preprocess(np.array([t.encode("utf-8") for t in args.inputs], dtype=object)))
    attributions, classes, at_text, at_baseline = token_integrated_gradients(load_model(run), ids)
    words = vocabulary(info.preprocess)
    for k, text in enumerate(args.inputs):
        keep = ids[k] != 0
        tokens = [[words[i], round(float(a), 6)] for i, a in zip(ids[k][keep], attributions[k][keep])]
        label = info.class_names[classes[k]] if classes is not None else None
        row = {"input": text, **({"label": label, "class_index": int(classes[k])} if label else {}),
               "output": float(at_text[k]), "baseline_output": float(at_baseline[k]), "tokens": tokens}
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            what = f"{label} ({at_text[k]:.3f})" if label else f"score {at_text[k]:+.3f}"
            shown = (colour_tokens(*zip(*tokens)) if tokens and sys.stdout.isatty()
                     else " ".join(f"{t}[{a:+.3f}]" for t, a in tokens))
            print(f"{what}: {shown}")
