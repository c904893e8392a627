"""Keeps a user's terminal to our own output.

TensorFlow's C++ runtime writes start-up lines (cudart_stub, cuInit, oneDNN, "All log
messages before absl::InitializeLog() …") straight to file descriptor 2 before absl's
logging is initialised, so `TF_CPP_MIN_LOG_LEVEL` cannot silence them (upstream
tensorflow#100442). `quiet_native_stderr` points descriptor 2 at a log file and gives
Python's `sys.stderr` (our one-line errors) a private copy of the terminal. Python
warnings and TensorFlow's Python logger go to the log as well. `--verbose` or
`DLSUITE_VERBOSE=1` keeps everything on the terminal.
"""

import io
import logging
import os
import sys
import tempfile
import warnings

VERBOSE_ENV = "DLSUITE_VERBOSE"


def native_log_path():
    """Where TensorFlow's own messages go (one file per user, appended)."""
    return os.environ.get("DLSUITE_NATIVE_LOG") or os.path.join(
        tempfile.gettempdir(), f"dlsuite-{os.getuid() if hasattr(os, 'getuid') else 'user'}-tensorflow.log")


def wants_verbose(argv):
    """True for `--verbose` anywhere in argv (removed from it) or DLSUITE_VERBOSE=1."""
    verbose = "--verbose" in argv
    while "--verbose" in argv:
        argv.remove("--verbose")
    return verbose or os.environ.get(VERBOSE_ENV, "").lower() in ("1", "true", "yes")


def quiet_native_stderr(verbose=False):
    """Redirects descriptor 2 to `native_log_path()` unless `verbose`; returns the log path or None."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # child processes keep their messages too
        return None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    path = native_log_path()
    try:
        log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return None  # an unwritable temp dir must not stop the command
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = io.TextIOWrapper(os.fdopen(terminal_fd, "wb", buffering=0), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)
    log = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="backslashreplace")
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: log.write(
        warnings.formatwarning(message, category, filename, lineno, line))
    logging.getLogger().handlers[:] = [logging.StreamHandler(log)]  # TF adds none of its own then
    return path
