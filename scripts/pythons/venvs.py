"""A venv of a root's interpreter, with pip, for maturin to build ferroloop into.

Debian's ensurepip takes its pip wheel from WHEEL_PKG_DIR, a path fixed at build time
(/usr/share/python-wheels): on this machine that is bookworm's folder, whose pip is meant for
3.11, or nothing. So the venv is made without pip and pip is installed from the wheel the
root's own python3-pip-whl ships, run straight from the wheel file as pip allows.
"""

import glob
import os
import subprocess
import sys
import time

from debian_archive import log


def make(python, venv_dir):
    """A venv of `python` in `venv_dir` with pip; -> the venv's python. Reused when sound."""
    venv_python = os.path.join(venv_dir, 'bin', 'python')
    if _sound(python, venv_dir):
        return venv_python
    started = time.monotonic()
    subprocess.run([python, '-m', 'venv', '--clear', '--without-pip', venv_dir], check=True)
    wheel = _pip_wheel(python)
    subprocess.run([venv_python, os.path.join(wheel, 'pip'), 'install', '--quiet',
                    '--no-index', '--disable-pip-version-check', wheel],
                   check=True, stdout=sys.stderr)
    log(f'{venv_dir}: venv with {os.path.basename(wheel)} in {time.monotonic() - started:.1f}s')
    return venv_python


def _pip_wheel(python):
    # <root>/usr/bin/python3.X -> <root>/usr/share/python-wheels/pip-*.whl
    usr = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    wheels = sorted(glob.glob(os.path.join(usr, 'share', 'python-wheels', 'pip-*.whl')))
    if not wheels:
        raise RuntimeError(f'no pip wheel in {usr}/share/python-wheels (python3-pip-whl)')
    return wheels[-1]


def _sound(python, venv_dir):
    """Whether venv_dir is already a venv of this very interpreter, with pip in it."""
    try:
        with open(os.path.join(venv_dir, 'pyvenv.cfg')) as f:
            config = dict(line.split(' = ', 1) for line in f.read().splitlines() if ' = ' in line)
    except OSError:
        return False
    if config.get('home') != os.path.dirname(python):
        return False
    return bool(glob.glob(os.path.join(venv_dir, 'lib', 'python*', 'site-packages', 'pip')))
