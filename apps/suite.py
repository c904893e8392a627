"""`dlsuite`: the suite's own commands, above the apps (`apps`, `architectures`, `demo`,
`bench`, `tensorboard`, `launch`); each app's `dl-<app>` is `shared.cli.app_main`."""

import argparse
import importlib
import os
import sys

from apps import APPS
from shared.cli import VERBOSE_HELP, Parser, guard
from shared.errors import UserError
from shared.terminal import quiet_native_stderr, wants_verbose


def main(argv=None):
    prog = "dlsuite"
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_native_stderr(wants_verbose(argv))
    parser = Parser(prog=prog, description="dlsuite: the whole suite", epilog=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("apps", help="list the apps and their tasks")
    sub.add_parser("architectures", help="list the architecture builders and variants with parameter counts")
    p = sub.add_parser("demo", help="train, evaluate, export and verify the default classifier")
    p.add_argument("--tiny", action="store_true", help="a seconds-long demo")
    p = sub.add_parser("bench", help="engine vs plain Keras training speed per task (--task, --all); "
                                     "without them: the simple convnet and SavedModel vs int8 TFLite")
    p.add_argument("--task", action="append", metavar="APP:TASK", help="a task to measure (repeatable)")
    p.add_argument("--all", action="store_true", help="every registered task")
    p.add_argument("--steps", type=int, default=60, help="timed training steps per measurement (--task, --all)")
    p.add_argument("--wait-steps", type=int, default=200, help="steps of the real epoch timed for the input wait "
                   "(at most an epoch; --task, --all)")
    p.add_argument("--tiny", action="store_true", help="the tasks' tiny configs (--task, --all)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="a config field for every task measured")
    p.add_argument("--threads", metavar="INTRA,INTER", help="TensorFlow's op thread pools (default: TF's own)")
    p.add_argument("--json", metavar="FILE", help="also write every measurement (both sides, each round) as JSON")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--examples", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=2)
    p = sub.add_parser("tensorboard", help="serve TensorBoard on the run logs")
    p.add_argument("--logdir", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6006)
    p = sub.add_parser("launch", help="start N local workers with TF_CONFIG: launch --workers N -- CMD…")
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--run-name", default=None)
    p.add_argument("cmd", nargs=argparse.REMAINDER)

    def run():
        args = parser.parse_args(argv)
        if args.command == "apps":
            for app, package in APPS.items():
                tasks = importlib.import_module(f"{package}.tasks").TASKS
                print(f"dl-{app}: {', '.join(tasks.names())}")
        elif args.command == "architectures":
            from shared.architectures.summary import describe

            for row in describe():
                params = f"{row['params']:>12,d}" if row["params"] is not None else f"{'error':>12s}"
                print(f"{row['variant']:28s} {row['architecture']:24s} {params}  {row.get('error') or row['doc']}")
        elif args.command == "demo":
            from apps.demo import demo

            demo(tiny=args.tiny)
        elif args.command == "bench" and (args.task or args.all):
            from apps.benchmark import all_tasks, bench_tasks, parse_overrides, parse_threads

            results, failures = bench_tasks(all_tasks() if args.all else args.task, steps=args.steps,
                                            rounds=args.rounds, tiny=args.tiny, overrides=parse_overrides(args.set),
                                            threads=parse_threads(args.threads), wait_steps=args.wait_steps)
            if args.json:
                from shared.export.atomic import atomic_write_json

                atomic_write_json(args.json, {"results": results, "failures": failures})
            if failures:
                raise UserError(f"bench: {len(failures)} task(s) failed: {', '.join(failures)}")
        elif args.command == "bench":
            from apps.convnet_bench import bench

            bench(epochs=args.epochs, examples=args.examples, rounds=args.rounds)
        elif args.command == "tensorboard":
            from shared.training.rundir import home

            return serve_tensorboard(args.logdir or os.path.join(home(), "tensorboard_logs"), args.host, args.port)
        elif args.command == "launch":
            from shared.training.launch import launch

            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            return launch(cmd, args.workers, run_name=args.run_name)
        return 0

    return guard(prog, run)


def serve_tensorboard(logdir, host, port):
    if not os.path.isdir(logdir):
        raise UserError(f"--logdir {logdir}: no such directory (train something first)")
    from tensorboard import program

    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", logdir, "--host", host, "--port", str(port)])
    try:
        url = tb.launch()
    except program.TensorBoardServerException as e:
        raise UserError(f"--port {port}: {e}") from None
    print(f"TensorBoard at {url} (logs: {logdir}); Ctrl-C to stop", flush=True)
    try:
        import time

        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
