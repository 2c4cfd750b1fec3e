"""Facts about the machine and the run that the report states beside the figures: what ran
where, which versions, and how busy other processes kept the CPUs (on a shared 2-core machine
that is the main source of noise)."""

import importlib.metadata
import os
import platform
import resource
import subprocess
from pathlib import Path

from bench.processes import CLIENT_CPU, REPO_ROOT, SERVER_CPU


def _git(*args):
    done = subprocess.run(['git', *args], check=False, capture_output=True, text=True,
                          cwd=REPO_ROOT)
    return done.stdout.strip()


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return 'not installed'


def _cpu_model():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def facts():
    wrk = subprocess.run(['sh', '-c', 'wrk -v 2>&1 | head -1'], check=False,
                         capture_output=True, text=True)
    versions = {name: _version(name) for name in ('ferroloop', 'uvloop', 'rloop', 'uvicorn', 'httptools')}
    versions['wrk'] = wrk.stdout.split(' [')[0].removeprefix('wrk ').strip() or 'not installed'
    commit = _git('rev-parse', '--short', 'HEAD')
    if _git('status', '--porcelain'):
        commit += '-dirty'
    return {'commit': commit, 'python': platform.python_version(), 'cpu': _cpu_model(),
            'cpus': os.cpu_count(), 'versions': versions,
            'server_cpu': SERVER_CPU, 'client_cpu': CLIENT_CPU}


def load_average():
    return ' '.join(f'{value:.2f}' for value in os.getloadavg())


class CpuAccount:
    """CPU time the whole machine spent busy, less what this suite and its (waited-for)
    processes spent: what other processes took from the benchmark while it ran."""

    def __init__(self):
        self._machine = self._machine_busy()
        self._ours = self._our_time()

    @staticmethod
    def _machine_busy():
        fields = [int(v) for v in Path('/proc/stat').read_text().split('\n', 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf('SC_CLK_TCK')

    @staticmethod
    def _our_time():
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def others_seconds(self, also_ours=0.0):
        """CPU-seconds others took since this account opened; ``also_ours`` is what our
        processes that are still running (servers) used meanwhile."""
        machine = self._machine_busy() - self._machine
        ours = self._our_time() - self._ours + also_ours
        return max(0.0, machine - ours)
