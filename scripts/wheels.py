"""Build a manylinux wheel of ferroloop for every CPython it supports, and try each as a user
would: installed into a fresh venv of its interpreter, with no Rust toolchain on the PATH,
running a small real program (scripts/wheel_smoke.py).

maturin builds against glibc 2.17 through zig (the `ziglang` package from PyPI), so no
manylinux container is needed. The wheels land in dist/. `make wheels` runs it; .ci/run too.

    python3 scripts/wheels.py [VERSION ...]     # default: 3.11 (this machine's) and every
                                                # version scripts/pythons knows
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DIST = os.path.join(ROOT, 'dist')
sys.path.insert(0, os.path.join(HERE, 'pythons'))

import versions as known  # noqa: E402  (scripts/pythons/versions.py)

# The oldest glibc the wheels run on (manylinux2014), as pip reads the tag.
COMPATIBILITY = 'manylinux_2_17'
# What builds the wheels: pinned, as the zig that links them decides which glibc symbols
# they need.
BUILD_REQUIREMENTS = ['maturin==1.16.0', 'ziglang==0.14.1']
# What a user's machine has: the interpreter's own folder, and the system's.
NO_RUST_PATH = '/usr/local/bin:/usr/bin:/bin'


def interpreter(version):
    """A Python of ``version`` with pip: the machine's own for 3.11, else scripts/pythons'."""
    if version == f'{sys.version_info.major}.{sys.version_info.minor}':
        return sys.executable
    out = subprocess.run([sys.executable, os.path.join(HERE, 'pythons'), '--venv',
                          os.path.join(ROOT, '.venv-{version}'), version],
                         check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()


def build(version, python, tools):
    """Builds the wheel for ``python``; returns its path."""
    tag = 'cp' + version.replace('.', '')
    for old in glob.glob(os.path.join(DIST, f'ferroloop-*-{tag}-*.whl')):
        os.remove(old)
    # maturin finds zig as `python -m ziglang` through the PATH.
    env = dict(os.environ, PATH=os.path.join(tools, 'bin') + os.pathsep + os.environ['PATH'],
               CARGO_TARGET_DIR=os.path.join(ROOT, 'target', 'wheels'))
    subprocess.run([os.path.join(tools, 'bin', 'maturin'), 'build', '--release', '--zig',
                    '--compatibility', COMPATIBILITY, '--interpreter', python, '--out', DIST],
                   cwd=ROOT, env=env, check=True)
    (wheel,) = glob.glob(os.path.join(DIST, f'ferroloop-*-{tag}-*.whl'))
    return wheel


def smoke(python, wheel):
    """Installs ``wheel`` into a fresh venv of ``python`` and runs the smoke program there,
    with nothing of Rust reachable; returns its output."""
    base = subprocess.run([python, '-c', 'import sys; print(sys._base_executable)'],
                          check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix='ferroloop-wheel-') as tmp:
        venv = os.path.join(tmp, 'venv')
        subprocess.run([base, '-m', 'venv', '--without-pip', venv], check=True)
        venv_python = os.path.join(venv, 'bin', 'python')
        # pip from the interpreter the wheel was built with (Debian's roots have no ensurepip
        # wheel that suits their version); installing needs no compiler.
        pip = subprocess.run([python, '-c', 'import pip, os; print(os.path.dirname(pip.__path__[0]))'],
                             check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        env = {'PATH': NO_RUST_PATH, 'HOME': tmp, 'PYTHONPATH': pip}
        subprocess.run([venv_python, '-m', 'pip', 'install', '--quiet', '--no-index',
                        '--disable-pip-version-check', wheel], env=env, check=True)
        env.pop('PYTHONPATH')
        out = subprocess.run([venv_python, os.path.join(HERE, 'wheel_smoke.py')], env=env,
                             cwd=tmp, check=True, stdout=subprocess.PIPE, text=True)
        return out.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    here = f'{sys.version_info.major}.{sys.version_info.minor}'
    parser.add_argument('versions', nargs='*', default=[here, *known.SUITES])
    args = parser.parse_args()
    os.makedirs(DIST, exist_ok=True)
    tools = os.path.join(ROOT, 'target', 'wheel-tools')
    if not os.path.exists(os.path.join(tools, 'bin', 'maturin')):
        subprocess.run([sys.executable, '-m', 'venv', tools], check=True)
        subprocess.run([os.path.join(tools, 'bin', 'pip'), 'install', '--quiet',
                        *BUILD_REQUIREMENTS], check=True)
    rows = []
    for version in args.versions:
        started = time.monotonic()
        python = interpreter(version)
        wheel = build(version, python, tools)
        built = time.monotonic() - started
        output = smoke(python, wheel)
        rows.append((os.path.basename(wheel), os.path.getsize(wheel), built, output))
        print(f'{version}: {output}', flush=True)
    print('\nwheel                                                                size     build  smoke')
    for name, size, built, output in rows:
        print(f'{name:68} {size / 1e6:5.2f} MB {built:5.0f} s  {output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
