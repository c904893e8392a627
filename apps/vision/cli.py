"""`dl-vision`: the vision app's command line (the shared CLI over this app's tasks)."""

from apps.vision.tasks import TASKS
from shared.cli import app_main


def main(argv=None):
    return app_main("vision", TASKS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
