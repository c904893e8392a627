"""`dl-health`: the healthcare app's command line (the shared CLI over this app's tasks)."""

from shared.cli import app_main


def main(argv=None):
    return app_main("health", "apps.healthcare.tasks", argv)


if __name__ == "__main__":
    raise SystemExit(main())
