"""Debian's archive seen through apt, for one suite, without touching the machine's apt.

apt-get runs with its own sources list, package lists, download cache and an empty dpkg
status: resolving packages against an empty status yields their whole dependency closure,
which is what a private root needs. The machine's apt configuration still applies (proxies,
trusted keys), and its mirror is the one used: on CI that is the mirror the machine reaches.
"""

import glob
import os
import re
import subprocess
import sys
import time

DEFAULT_MIRROR = 'http://deb.debian.org/debian'
# the keys the machine's own Debian sources are checked with; they also sign sid
KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'


class ArchiveError(RuntimeError):
    pass


def machine_mirror():
    """The Debian mirror the machine's own apt sources use (FERROLOOP_DEBIAN_MIRROR wins)."""
    if os.environ.get('FERROLOOP_DEBIAN_MIRROR'):
        return os.environ['FERROLOOP_DEBIAN_MIRROR'].rstrip('/')
    for uri, suites in _machine_sources():
        # the security archive (debian-security) and third-party sources hold no sid
        if uri.rstrip('/').endswith('/debian') and not any(s.endswith('-security') for s in suites):
            return uri.rstrip('/')
    return DEFAULT_MIRROR


def _machine_sources():
    """(uri, suites) of every enabled binary source, one-line and deb822 formats alike."""
    one_line = ['/etc/apt/sources.list', *sorted(glob.glob('/etc/apt/sources.list.d/*.list'))]
    for path in one_line:
        for line in _read_lines(path):
            # deb [options] uri suite components...
            words = re.sub(r'\[[^]]*\]', ' ', line.split('#')[0]).split()
            if words[:1] == ['deb'] and len(words) >= 3:
                yield words[1], words[2:3]
    for path in sorted(glob.glob('/etc/apt/sources.list.d/*.sources')):
        for stanza in '\n'.join(_read_lines(path)).split('\n\n'):
            fields = {}
            for line in stanza.splitlines():
                if ':' in line and not line.startswith((' ', '#')):
                    key, value = line.split(':', 1)
                    fields[key.strip().lower()] = value.split()
            if 'deb' in fields.get('types', []) and fields.get('enabled', ['yes']) != ['no']:
                for uri in fields.get('uris', []):
                    yield uri, fields.get('suites', [])


def _read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


class SuiteApt:
    """apt-get for one suite of the archive, with all its state under `home`."""

    def __init__(self, home, suite, mirror=None):
        self.home = home
        self.suite = suite
        self.mirror = mirror or machine_mirror()
        self.archives = os.path.join(home, 'archives')
        self._updated = False
        for sub in ('lists/partial', 'archives/partial', 'cache', 'empty.d'):
            os.makedirs(os.path.join(home, sub), exist_ok=True)
        sources = os.path.join(home, 'sources.list')
        options = 'arch=amd64'
        if os.path.exists(KEYRING):
            options += f' signed-by={KEYRING}'
        line = f'deb [{options}] {self.mirror} {suite} main\n'
        # rewritten only when it changes: a newer sources.list makes apt rebuild its cache
        if _read_lines(sources) != [line.strip()]:
            with open(sources, 'w') as f:
                f.write(line)
        open(os.path.join(home, 'status'), 'a').close()

    def _options(self):
        h = self.home
        settings = {
            'Dir::Etc::SourceList': f'{h}/sources.list',
            'Dir::Etc::SourceParts': f'{h}/empty.d',
            # the machine's pins are about its own suites, not this one
            'Dir::Etc::Preferences': '/dev/null',
            'Dir::Etc::PreferencesParts': f'{h}/empty.d',
            'Dir::State::Lists': f'{h}/lists',
            'Dir::State::status': f'{h}/status',
            'Dir::State::extended_states': f'{h}/extended_states',
            'Dir::Cache': f'{h}/cache',
            # kept between calls (Debian's container images switch these off)
            'Dir::Cache::pkgcache': 'pkgcache.bin',
            'Dir::Cache::srcpkgcache': 'srcpkgcache.bin',
            'Dir::Cache::archives': self.archives,
            'APT::Architecture': 'amd64',
            'APT::Architectures': 'amd64',
            'APT::Install-Recommends': 'false',
            'APT::Install-Suggests': 'false',
            # the cache may sit in a home that apt's download user cannot enter
            'APT::Sandbox::User': 'root' if os.geteuid() == 0 else '',
            'Acquire::Retries': '3',
            'Acquire::http::Timeout': '30',
            'Acquire::https::Timeout': '30',
        }
        options = []
        for key, value in settings.items():
            if value:
                options += ['-o', f'{key}={value}']
        return options

    def _run(self, tool, *args, what):
        command = [tool, *self._options(), *args]
        result = subprocess.run(command, check=False, capture_output=True, text=True,
                                env={**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'})
        if result.returncode != 0:
            tail = '\n'.join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise ArchiveError(f'{what} from {self.mirror} {self.suite} failed '
                               f'({tool} exited {result.returncode}):\n{tail}')
        return result.stdout

    def update(self):
        """Fetch the suite's package lists, once per process; an unreachable mirror fails here."""
        if self._updated:
            return
        started = time.monotonic()
        self._run('apt-get', '--error-on=any', 'update',
                  what="reading the package lists (is Debian's archive reachable?)")
        self._updated = True
        log(f'{self.suite}: package lists fetched in {time.monotonic() - started:.1f}s')

    def closure(self, packages):
        """[(name, version)] of the packages and everything they depend on (no recommends)."""
        out = self._run('apt-get', '--simulate', 'install', *packages,
                        what=f'resolving {" ".join(packages)}')
        found = []
        for line in out.splitlines():
            # "Inst libc6 (2.43-7 Debian:unstable [amd64])"
            if line.startswith('Inst '):
                name, version = line.split()[1], line.split('(')[1].split()[0]
                found.append((name, version))
        return found

    def download(self, packages):
        """Download the closure of `packages`; -> {name: path of its .deb}."""
        wanted = self.closure(packages)
        self._run('apt-get', '--yes', '--download-only', 'install', *packages,
                  what=f'downloading {" ".join(packages)}')
        debs = {}
        for name, version in wanted:
            # apt names a file name_version_arch.deb, with an epoch's colon quoted
            stem = glob.escape(f'{name}_{version.replace(":", "%3a")}')
            matches = glob.glob(os.path.join(self.archives, f'{stem}_*.deb'))
            if len(matches) != 1:
                raise ArchiveError(f'{name} {version}: expected one downloaded .deb, '
                                   f'found {matches or "none"} in {self.archives}')
            debs[name] = matches[0]
        return debs

    def clean(self):
        """Drop the downloaded .debs: once unpacked, a root needs them no more."""
        for deb in glob.glob(os.path.join(self.archives, '*.deb')):
            os.unlink(deb)


def log(message):
    print(message, file=sys.stderr, flush=True)
