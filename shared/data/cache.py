"""The one data cache: embedded datasets are prepared into it once and read from it after.

`$DLSUITE_DATA_CACHE` overrides the location (default `~/.cache/dlsuite`).
"""

import os


def data_cache(*parts):
    """A path inside the data cache (its parent directory is created)."""
    root = os.environ.get("DLSUITE_DATA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dlsuite")
    path = os.path.join(root, *parts)
    os.makedirs(os.path.dirname(path) if parts else path, exist_ok=True)
    return path
