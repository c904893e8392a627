"""`dl-drive`: the driving app's command line (the shared CLI over this app's tasks), plus
`record` (expert episodes into TFRecord shards), `view` (a GIF of a recording with its ground
truth drawn on), `drive RUN` (closed-loop evaluation of a policy against the expert) and
`bench` (per-frame latency of the exports, simulator speed)."""

from shared.cli import AppCommand, app_main


def _record_arguments(parser):
    parser.add_argument("--episodes", type=int, default=200, help="expert episodes to record (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode k uses seed + k")
    parser.add_argument("--out", required=True, help="directory to create (it must not hold a recording)")
    parser.add_argument("--workers", type=int, default=0, help="parallel simulator processes (default: one per core)")
    parser.add_argument("--no-views", action="store_true", help="skip the camera frames (policy data only)")


def _record(args):
    from apps.driving.record import record
    from apps.driving.recordings import progress_bar

    manifest = record(args.out, args.episodes, args.seed, views=not args.no_views, workers=args.workers,
                      progress=progress_bar(args.episodes))
    expert = manifest["expert"]
    print(f"{args.out}: {manifest['episodes']} episodes, {manifest['steps']} steps "
          f"({manifest['steps_per_second']} steps/s, {manifest['workers']} worker(s)); expert: collision rate "
          f"{expert['collision_rate']:.3f}, mean speed {expert['mean_speed']:.1f} m/s, return {expert['mean_return']:.2f}")


def _view_arguments(parser):
    parser.add_argument("source", help="a recording directory (ground truth) or a detect/lanes run (predictions)")
    parser.add_argument("--out", required=True, help="the GIF to write")
    parser.add_argument("--episode", type=int, default=None,
                        help="which recorded episode (default: 0; for a run, its first test episode)")
    parser.add_argument("--view", default="front", choices=("front", "bev"), help="recordings: camera (default front)")


def _view(args):
    import os

    from apps.driving.clips import view_recording, view_run

    if os.path.exists(os.path.join(args.source, "config.yaml")):
        print(view_run(args.source, args.out, args.episode))
    else:
        print(view_recording(args.source, args.out, args.episode or 0, args.view))


def _drive_arguments(parser):
    parser.add_argument("--episodes", type=int, default=50, help="closed-loop episodes (default 50)")
    parser.add_argument("--seed", type=int, default=None, help="first episode seed (default: the test seeds)")
    parser.add_argument("--model", default="auto", choices=("auto", "savedmodel", "keras"),
                        help="what drives: the exported SavedModel (auto: when the run has one) or the Keras model")
    parser.add_argument("--record", metavar="GIF", help="also write the policy's first episode as a GIF")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def _drive(run, task, cfg, info, args):
    from apps.driving.clips import drive_command

    drive_command(run, args)


def _bench_arguments(parser):
    for task in ("detect", "lanes", "policy"):
        parser.add_argument(f"--{task}", metavar="RUN", help=f"a {task} run with exports")
    parser.add_argument("--episodes", type=int, default=8, help="episodes per simulator-speed measurement (default 8)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def _bench(args):
    from apps.driving.bench import bench_command

    bench_command(args)


COMMANDS = (AppCommand("bench", "batch-1 latency of detect + lanes + policy exports per frame; simulator steps/s",
                       _bench_arguments, _bench, on_run=False),
            AppCommand("record", "drive seeded expert episodes and write TFRecord shards with their ground truth",
                       _record_arguments, _record, on_run=False),
            AppCommand("view", "a GIF of a recorded episode with its ground truth, or of a run's predictions",
                       _view_arguments, _view,
                       on_run=False),
            AppCommand("drive", "closed-loop evaluation of a policy run against the expert on the same seeds",
                       _drive_arguments, _drive))


def main(argv=None):
    return app_main("drive", "apps.driving", argv, commands=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
