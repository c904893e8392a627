"""Debian packages read as data: `make setup` fetches them with `apt-get download` into
`.venv/debs` (installing them would pull in programs we don't want); the first use extracts
one with `dpkg-deb -x` into the data cache."""

import glob
import os
import subprocess
import sys

from shared.data.cache import data_cache
from shared.errors import UserError


def debs_dir():
    """Where `make setup` puts the Debian packages read as data (`$DLSUITE_DEBS` overrides)."""
    return os.environ.get("DLSUITE_DEBS") or os.path.join(sys.prefix, "debs")


def extracted_package(package):
    """The data-cache directory holding `package`'s extracted files (`dpkg-deb -x`, once)."""
    target = data_cache("debs", package)
    if os.path.isfile(os.path.join(target, ".complete")):
        return target
    debs = sorted(glob.glob(os.path.join(debs_dir(), f"{package}_*.deb")))
    if not debs:
        raise UserError(f"{package}: no .deb in {debs_dir()}; run `make setup` (it runs `apt-get download {package}` "
                        "there), or set DLSUITE_DEBS to a directory holding it")
    os.makedirs(target, exist_ok=True)
    try:
        subprocess.run(["dpkg-deb", "-x", debs[-1], target], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise UserError(f"{debs[-1]}: dpkg-deb -x failed ({getattr(e, 'stderr', b'') or e})") from None
    open(os.path.join(target, ".complete"), "w").close()
    return target
