"""`dlsuite launch --workers N -- CMD`: N local worker processes on 127.0.0.1 with TF_CONFIG.

On a real cluster, skip this: each node runs the same CMD with the cluster's TF_CONFIG
(Kubernetes: set by the TF operator / a JobSet env; SLURM: build it from SLURM_JOB_NODELIST
and SLURM_PROCID, or use `tf.distribute.cluster_resolver.SlurmClusterResolver`).
"""

import json
import os
import socket
import subprocess
import sys
import threading

from shared.errors import UserError
from shared.training.rundir import new_run_id


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses, index):
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _pump(stream, prefix):
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"{prefix}{line}")
        sys.stdout.flush()


def launch(cmd, workers, run_name=None):
    """Runs `cmd` as `workers` processes; returns the first non-zero exit code, else 0."""
    if not cmd:
        raise UserError("launch: give the command after --, e.g. dlsuite launch --workers 2 -- dl-vision train classify")
    if workers < 1:
        raise UserError(f"--workers: expected a positive integer; got {workers}")
    addresses = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    run_name = run_name or os.environ.get("DLSUITE_RUN_NAME") or new_run_id()
    procs, pumps = [], []
    for i in range(workers):
        env = {**os.environ, "TF_CONFIG": tf_config(addresses, i), "DLSUITE_RUN_NAME": run_name,
               "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except FileNotFoundError:
            raise UserError(f"launch: command not found: {cmd[0]}") from None
        procs.append(proc)
        pump = threading.Thread(target=_pump, args=(proc.stdout, f"[worker {i}] "), daemon=True)
        pump.start()
        pumps.append(pump)
    codes = [None] * workers
    try:
        while None in codes:
            for i, proc in enumerate(procs):
                if codes[i] is None:
                    try:
                        codes[i] = proc.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        continue
                    if codes[i] != 0:  # one worker failed: the others would wait forever
                        for other in procs:
                            if other.poll() is None:
                                other.terminate()
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()
        raise
    for pump in pumps:
        pump.join(timeout=5)
    return next((c for c in codes if c), 0)
