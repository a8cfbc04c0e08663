"""Local multi-worker clusters for the tests: worker processes on 127.0.0.1,
each with its TF_CONFIG, as `bin/train --strategy multiworker` expects on a
real cluster (docs/training.md)."""

import json
import os
import signal
import socket
import subprocess
import time


def free_ports(n):
  """n distinct TCP ports that were free on 127.0.0.1 a moment ago."""
  socks = []
  try:
    for _ in range(n):
      s = socket.socket()
      s.bind(("127.0.0.1", 0))
      socks.append(s)
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


def tf_config(ports, index):
  """TF_CONFIG of worker `index` (worker 0 is the chief) of a local cluster."""
  return json.dumps({
      "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
      "task": {"type": "worker", "index": index}})


class Cluster:
  """Starts one process per worker with the same command line; stdout and
  stderr go to files in `log_dir` (read with `output(i)`)."""

  def __init__(self, command, n_workers, log_dir, env=None, ports=None):
    self.command = list(command)
    self.ports = ports or free_ports(n_workers)
    self.log_dir = log_dir
    self.procs = []
    self._logs = []
    base = dict(os.environ if env is None else env)
    for i in range(n_workers):
      out = os.path.join(log_dir, f"worker{i}-{time.time_ns()}.log")
      self._logs.append(out)
      with open(out, "w") as f:
        self.procs.append(subprocess.Popen(
            self.command, env=dict(base, TF_CONFIG=tf_config(self.ports, i)),
            stdout=f, stderr=subprocess.STDOUT, start_new_session=True))

  def output(self, i):
    with open(self._logs[i]) as f:
      return f.read()

  def wait(self, timeout):
    """Exit statuses of all workers; kills every worker still running when
    `timeout` seconds have passed (their status is then None)."""
    deadline = time.monotonic() + timeout
    codes = []
    for p in self.procs:
      try:
        codes.append(p.wait(timeout=max(0.1, deadline - time.monotonic())))
      except subprocess.TimeoutExpired:
        codes.append(None)
    if None in codes:
      self.kill()
    return codes

  def kill(self, i=None):
    """SIGKILL worker i (all when None), as a machine failure would."""
    for p in (self.procs if i is None else [self.procs[i]]):
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
