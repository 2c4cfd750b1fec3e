"""Benchmark processes pinned to their CPUs: servers that announce readiness, and clients
that print a result.

The server (or the Python process of a micro benchmark) gets CPU 0, the load generator CPU 1,
so neither steals the other's core and the figure is the server's.
"""

import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.loops import NOT_AVAILABLE

# Benchmark processes run from the repository root, so ``python -m bench.…`` finds the suite.
REPO_ROOT = Path(__file__).resolve().parent.parent

SERVER_CPU = 0
CLIENT_CPU = 1
READY_TIMEOUT = 30.0


class NotAvailable(Exception):
    """The loop cannot run this workload yet (it raised NotImplementedError)."""


class BenchmarkError(Exception):
    """A benchmark process failed: the message says which, how, and the end of its stderr."""


def pinned(cpu, command):
    """``command`` run on one CPU (unpinned where taskset is missing)."""
    if shutil.which('taskset') is None:
        return list(command)
    return ['taskset', '-c', str(cpu), *command]


def _tail(text, lines=3):
    return ' | '.join(text.strip().splitlines()[-lines:])


class ServerProcess:
    """A server started at once; ``wait_ready`` then waits for its ``READY <endpoint>`` line."""

    def __init__(self, name, command):
        self.name = name
        # Open for the server's lifetime (closed by stop), not a with-block.
        self._stderr = tempfile.TemporaryFile(mode='w+')  # noqa: SIM115
        self._process = subprocess.Popen(
            pinned(SERVER_CPU, command), stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            cwd=REPO_ROOT)
        self.endpoint = None

    def wait_ready(self, timeout=READY_TIMEOUT):
        """The endpoint the server listens on; raises NotAvailable or BenchmarkError."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.stop()
                raise BenchmarkError(f'{self.name}: not ready after {timeout:.0f} s')
        line = self._process.stdout.readline().strip()
        if line.startswith('READY '):
            self.endpoint = line.removeprefix('READY ')
            return self.endpoint
        status = self._process.wait(timeout=10)
        if status == NOT_AVAILABLE and line.startswith('N/A '):
            raise NotAvailable(line.removeprefix('N/A '))
        raise BenchmarkError(f'{self.name}: exited with status {status} before it was ready: '
                             f'{_tail(self.stderr())}')

    def cpu_seconds(self):
        """CPU time the server has used so far (all its threads), from /proc."""
        try:
            stat = Path(f'/proc/{self._process.pid}/stat').read_text()
        except OSError:
            return None
        fields = stat.rpartition(')')[2].split()  # after "pid (comm)", which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')  # utime + stime

    def stderr(self):
        self._stderr.seek(0)
        return self._stderr.read()

    def check_alive(self):
        """Raise BenchmarkError if the server has died (a crash under load is a finding)."""
        status = self._process.poll()
        if status is not None:
            raise BenchmarkError(f'{self.name}: server died with status {status}: '
                                 f'{_tail(self.stderr())}')

    def stop(self):
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process.stdout.close()
        self._stderr.close()


def run_client(name, command, cpu, timeout):
    """Run ``command`` pinned to ``cpu`` and return its stdout; raises NotAvailable when it
    exits with the n/a status, BenchmarkError on any other failure."""
    started = time.monotonic()
    try:
        done = subprocess.run(pinned(cpu, command), check=False, capture_output=True, text=True,
                              timeout=timeout, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f'{name}: still running after {timeout:.0f} s, killed') from None
    if done.returncode == NOT_AVAILABLE and done.stdout.startswith('N/A '):
        raise NotAvailable(done.stdout.strip().removeprefix('N/A '))
    if done.returncode != 0:
        raise BenchmarkError(f'{name}: exited with status {done.returncode} after '
                             f'{time.monotonic() - started:.1f} s: {_tail(done.stderr)}')
    return done.stdout
