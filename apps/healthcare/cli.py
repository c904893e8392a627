"""`dl-health`: the healthcare app's command line (the shared CLI over this app's tasks), plus
`bench RUN` (a risk run against sklearn's logistic regression and gradient boosting)."""

from shared.cli import AppCommand, app_main


def _bench(run, task, cfg, info, args):
    from apps.healthcare.bench import bench_risk

    return bench_risk(run, task, cfg, info, args)


COMMANDS = (AppCommand("bench", "a risk run vs sklearn logistic regression and gradient boosting on its splits",
                       lambda parser: None, _bench),)


def main(argv=None):
    return app_main("health", "apps.healthcare.tasks", argv, commands=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
