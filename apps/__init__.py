"""The suite's apps: `dl-<name>` -> its package (configs.py, tasks.py, cli.py, …)."""

APPS = {"vision": "apps.vision", "nlp": "apps.nlp", "speech": "apps.speech", "health": "apps.healthcare",
        "drive": "apps.driving"}
