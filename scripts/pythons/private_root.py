"""A Debian-built CPython unpacked into a folder of its own, with its own C library.

Debian's newest suite links its python3.X against a newer glibc than the machine's
(3.14.10 asks for GLIBC_2.38 and, in termios, GLIBC_2.42; bookworm has 2.36), so the
interpreter cannot use the machine's loader. The packages and their whole dependency closure,
glibc included, are unpacked into the root, and the interpreter's ELF loader and rpath are
pointed into it. Only the interpreter is changed: the extension modules it loads, Debian's and
those maturin builds, find their libraries through the executable's rpath. Nothing is set in
the environment, so the programs Python starts (/bin/sh, gcc, cargo) keep the machine's
libraries.

patchelf does the pointing, and comes from the same suite as the rest: the root's own loader
runs it, so nothing is installed on the machine.
"""

import json
import os
import shutil
import subprocess
import time

from debian_archive import log

LIBDIR = 'usr/lib/x86_64-linux-gnu'
LOADER = f'{LIBDIR}/ld-linux-x86-64.so.2'
READY = '.ready.json'

# What a root must offer, checked once when it is made: the modules ferroloop and its tests
# need, headers for building extensions, the test suite, and that it runs from the root alone.
CHECK = r'''
import json, os, ssl, sys, sysconfig, venv, _asyncio
import test.test_asyncio
root = sys.argv[1]
include = sysconfig.get_paths()['include']
assert os.path.exists(os.path.join(include, 'Python.h')), f'no Python.h in {include}'
outside = [p for p in sys.path if p and not p.startswith(root)]
assert not outside, f'sys.path reaches outside the root: {outside}'
print(json.dumps({'version': sys.version.split()[0], 'ssl': ssl.OPENSSL_VERSION}))
'''


def interpreter(root, version):
    return os.path.join(root, 'usr', 'bin', f'python{version}')


def ready(root, version):
    """The root's record if it was completed and checked, else None."""
    try:
        with open(os.path.join(root, READY)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if os.path.exists(interpreter(root, version)) else None


def build(root, version, apt, packages):
    """Make the root for `version` from Debian's `packages`; -> its record (what ready() says)."""
    apt.update()
    started = time.monotonic()
    debs = apt.download(packages)
    size = sum(os.path.getsize(deb) for deb in debs.values()) / 1e6
    log(f'{version}: {len(debs)} packages, {size:.0f} MB, '
        f'resolved and downloaded in {time.monotonic() - started:.1f}s')

    # made beside its final place and renamed into it, so an interrupted run leaves no root
    # that looks complete; the paths written into the interpreter are the final ones already
    staging = f'{root}.partial'
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(staging)
    started = time.monotonic()
    for deb in debs.values():
        subprocess.run(['dpkg-deb', '--extract', deb, staging], check=True)
    log(f'{version}: unpacked in {time.monotonic() - started:.1f}s')

    started = time.monotonic()
    _point_into_root(staging, root, version)
    os.rename(staging, root)
    record = _check(root, version)
    record['packages'] = {name: os.path.basename(deb) for name, deb in sorted(debs.items())}
    with open(os.path.join(root, READY), 'w') as f:
        json.dump(record, f, indent=1)
    log(f'{version}: relocated and checked in {time.monotonic() - started:.1f}s '
        f'(CPython {record["version"]}, {record["ssl"]})')
    return record


def _point_into_root(staging, root, version):
    """Set the interpreter's loader and rpath to the root's C library (at its final path)."""
    python = os.path.realpath(interpreter(staging, version))
    patchelf = [os.path.join(staging, LOADER), '--library-path', os.path.join(staging, LIBDIR),
                os.path.join(staging, 'usr', 'bin', 'patchelf')]
    # --force-rpath: DT_RPATH, unlike DT_RUNPATH, is also searched for the libraries of what the
    # executable loads (lib-dynload's _ssl needs the root's libssl, not the machine's older one).
    # Two runs, rpath first: patchelf 0.18 setting the rpath of this non-PIE executable after
    # (or with) a longer interpreter path writes a binary that segfaults at start.
    subprocess.run([*patchelf, '--force-rpath', '--set-rpath', os.path.join(root, LIBDIR),
                    python], check=True)
    subprocess.run([*patchelf, '--set-interpreter', os.path.join(root, LOADER), python],
                   check=True)


def _check(root, version):
    result = subprocess.run([interpreter(root, version), '-I', '-c', CHECK, root],
                            check=False, capture_output=True, text=True)
    if result.returncode != 0:
        broken = f'{root}.broken'
        shutil.rmtree(broken, ignore_errors=True)
        os.rename(root, broken)
        raise RuntimeError(f'{version}: the interpreter in {broken} fails its check:\n'
                           f'{result.stderr.strip()}')
    return json.loads(result.stdout)
