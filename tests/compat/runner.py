"""Runs every test.test_asyncio module in worker processes and gathers one record per test.

A worker that the watchdog stops (a hang) or that dies (a segfault, a Rust panic) costs only
the test it was running: that test is recorded as `timeout` or `crash`, with where it hung or
what it said, and a new worker goes on with the rest of the module. A class that hangs again
and again gets a short timeout for the rest of its tests, so that a loop which hangs
everywhere cannot take the run hostage.
"""

import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from compat.guard import verdict_of

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'worker.py')

# The slow modules first, so that two at a time end together.
SLOW_FIRST = ['test_events', 'test_tasks', 'test_subprocess', 'test_ssl', 'test_sslproto',
              'test_streams', 'test_taskgroups', 'test_sendfile', 'test_locks']


@dataclasses.dataclass
class Options:
    loop: str
    sets: str = 'a'                 # 'a', 'b' or 'ab'
    modules: list = dataclasses.field(default_factory=list)   # empty: all of them
    jobs: int = 1
    # Just above test.support.SHORT_TIMEOUT (30 s): a test that gives up on its own after
    # that reports its own failure rather than a hang.
    timeout: float = 35.0
    fast_timeout: float = 5.0
    hang_streak: int = 2
    run_replaced: bool = False
    guard_selftest: bool = False
    log_dir: str = None             # keep the worker logs there


def discover_modules(python):
    listing = subprocess.run(
        [python, '-c', 'import os, test.test_asyncio as p; print(*os.listdir(os.path.dirname(p.__file__)))'],
        capture_output=True, text=True, check=True).stdout.split()
    found = sorted(name[:-3] for name in listing if name.startswith('test_') and name.endswith('.py'))
    return [m for m in SLOW_FIRST if m in found] + [m for m in found if m not in SLOW_FIRST]


def read_events(path):
    events = []
    if os.path.exists(path):
        with open(path, encoding='utf-8') as f:
            for line in f:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass    # the last line of a killed worker may be torn
    return events


def why_it_stopped(log_text):
    """(detail, hung) from what a stopped worker printed: faulthandler's dump, or a panic."""
    start = log_text.rfind('Timeout (')
    if start < 0:
        found = []
        panic = log_text.rfind(' panicked at ')
        if panic >= 0:
            found.append(' '.join(log_text[panic + 1:panic + 400].splitlines()[:2]))
        fatal = log_text.rfind('Fatal Python error')
        if fatal >= 0:
            found.append(log_text[fatal:fatal + 200].splitlines()[0])
        return ' | '.join(found)[:300], False
    # One block per thread, innermost frame first; the test runs in the one inside unittest.
    threads, frames = [], None
    for line in log_text[start:].splitlines()[1:]:
        line = line.strip()
        if line.startswith(('Thread 0x', 'Current thread 0x')):
            frames = []
            threads.append(frames)
        elif line.startswith('File "') and frames is not None:
            path, _, rest = line[len('File "'):].partition('", line ')
            number, _, function = rest.partition(' in ')
            frames.append(f'{os.path.basename(path)}:{number} {function}')
        elif line and line != '...':
            frames = None
    test_thread = next((t for t in threads if any(f.startswith('case.py:') for f in t)),
                       threads[0] if threads else [])
    return ('hung in ' + ' < '.join(test_thread[:3]))[:300], True


class ModuleRun:
    """Drives workers for one module until each planned test has a record."""

    def __init__(self, module, options, workdir):
        self.module = module
        self.options = options
        self.workdir = os.path.join(workdir, module)
        os.makedirs(self.workdir)
        self.events_path = os.path.join(self.workdir, 'events.jsonl')
        self.log_path = os.path.join(self.workdir, 'worker.log')
        self.plan = None            # [[id, set, why]]
        self.unclassified = []
        self.target = None
        self.records = {}
        self.sightings = {}         # id -> {kind: class}, for tests that never finish
        self.fixtures = []
        self.notes = []
        self.shims = {}
        self.skipped = None
        self.broken = None          # why no test of the module could be planned
        self.timeouts = {}          # class -> seconds, once it has hung hang_streak times
        self.hangs_in_a_row = {}
        self.launches = 0
        self.seconds = 0.0
        self.process = None

    def command(self, resume_path):
        o = self.options
        command = [sys.executable, WORKER, '--loop', o.loop, '--module', self.module,
                   '--events', self.events_path, '--resume', resume_path,
                   '--timeout', str(o.timeout), '--sets', o.sets]
        command += ['--run-replaced'] * o.run_replaced + ['--guard-selftest'] * o.guard_selftest
        return command

    def launch(self):
        resume_path = os.path.join(self.workdir, 'resume.json')
        with open(resume_path, 'w') as f:
            json.dump({'done': sorted(self.records), 'timeouts': self.timeouts}, f)
        env = dict(os.environ)
        env.pop('PYTHONASYNCIODEBUG', None)   # tests expect debug mode off unless they set it
        cwd = tempfile.mkdtemp(prefix='cwd-', dir=self.workdir)   # tests write files in cwd
        with open(self.log_path, 'ab') as log:
            log_start = log.tell()
            # Its own session: killing the group also ends what a hung test spawned.
            self.process = subprocess.Popen(self.command(resume_path), stdout=log,
                                            stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                            start_new_session=True)
        self.launches += 1
        return log_start, cwd

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self):
        # The watchdog inside the worker should always fire first; this catches a worker
        # so wedged that even faulthandler's thread cannot run.
        patience = max([self.options.timeout, *self.timeouts.values()]) + 60
        size, changed = -1, time.monotonic()
        while True:
            try:
                return self.process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
            now_size = os.path.getsize(self.events_path) if os.path.exists(self.events_path) else 0
            if now_size != size:
                size, changed = now_size, time.monotonic()
            elif time.monotonic() - changed > patience:
                self.notes.append('worker silent for too long: killed')
                self.kill()
                return self.process.wait()

    def run(self):
        began = time.monotonic()
        consumed = 0
        while True:
            log_start, cwd = self.launch()
            status = self.wait()
            self.kill()
            shutil.rmtree(cwd, ignore_errors=True)
            events = read_events(self.events_path)
            recorded_before = len(self.records)
            finished, running = self.take(events[consumed:])
            consumed = len(events)
            if finished:
                break
            with open(self.log_path, 'rb') as f:
                f.seek(log_start)
                log_text = f.read().decode('utf-8', 'replace')
            detail, hung = why_it_stopped(log_text)
            if self.plan is None:
                last_words = ([line for line in log_text.splitlines() if line.strip()] or [''])[-1]
                self.broken = f'worker exited with {status} before planning: {detail or last_words}'
                break
            if running is not None:
                self.stopped_in(running, hung, detail or f'worker exited with {status}')
            elif len(self.records) == recorded_before:
                # Died before any test of its own began: the next class's setUpClass did it.
                self.charge_next_class(hung, status, detail)
            else:
                self.notes.append(f'worker exited with {status} between tests: {detail}')
            if len(self.records) >= len(self.plan):
                break
        self.seconds = time.monotonic() - began
        self.fill_unfinished()
        return self

    def take(self, events):
        """Record what a worker wrote; -> (it finished, id of the test it was running)."""
        running = None
        for event in events:
            kind = event['event']
            if kind == 'plan':
                if self.plan is None:
                    self.plan = event['tests']
                    self.unclassified = event['unclassified']
                    self.target = event['target']
                    self.notes += event['notes']
            elif kind == 'start':
                running = event['test']
            elif kind == 'loop':
                self.sightings.setdefault(event['test'], {})[event['kind']] = event['cls']
            elif kind == 'result':
                running = None
                self.records[event['test']] = {
                    'outcome': event['outcome'], 'seconds': event['seconds'],
                    'detail': event['detail'], 'guard': event['guard']}
                self.hangs_in_a_row[class_of(event['test'])] = 0
            elif kind == 'restored':
                if event['test'] in self.records:
                    self.records[event['test']]['restored'] = event['what']
            elif kind == 'fixture':
                self.fixtures.append(event)
            elif kind == 'skipped':
                self.skipped = event['reason']
            elif kind == 'finished':
                self.shims = event['shims']
                return True, None
        return False, running

    def stopped_in(self, test_id, hung, detail):
        sighted = self.sightings.get(test_id, {})
        guard = None
        if sighted:
            guard = {'verdict': verdict_of(sighted), 'target_ran': None,
                     'loops': sorted(sighted.values()), 'partial': True}
        self.records[test_id] = {'outcome': 'timeout' if hung else 'crash', 'seconds': None,
                                 'detail': detail, 'guard': guard}
        cls = class_of(test_id)
        self.hangs_in_a_row[cls] = self.hangs_in_a_row.get(cls, 0) + 1
        if (self.hangs_in_a_row[cls] >= self.options.hang_streak and cls not in self.timeouts
                and self.options.fast_timeout < self.options.timeout):
            self.timeouts[cls] = self.options.fast_timeout
            self.notes.append(f'{cls}: {self.hangs_in_a_row[cls]} hangs or crashes in a row, '
                              f'{self.options.fast_timeout:g} s per test for the rest of it')

    def charge_next_class(self, hung, status, detail):
        todo = [test_id for test_id, *_ in self.plan if test_id not in self.records]
        if not todo:
            return
        cls = class_of(todo[0])
        for test_id in todo:
            if class_of(test_id) == cls:
                self.records[test_id] = {
                    'outcome': 'timeout' if hung else 'crash', 'seconds': None, 'guard': None,
                    'detail': f'the class fixture died (status {status}) {detail}'.strip()}
        self.notes.append(f'{cls}: no test began, the whole class is charged')

    def fill_unfinished(self):
        # A failed setUpClass (or a skip raised there) means its tests never start.
        by_class = {}
        for fixture in self.fixtures:
            # str() of unittest's _ErrorHolder: 'setUpClass (test.test_asyncio.mod.Class)'
            name = fixture['name']
            if '(' in name:
                by_class.setdefault(name[name.index('(') + 1:].rstrip(')').rsplit('.', 1)[-1], fixture)
        for test_id, *_ in self.plan or ():
            if test_id in self.records:
                continue
            fixture = by_class.get(class_of(test_id))
            if fixture is None:
                self.records[test_id] = {'outcome': 'not_run', 'seconds': None, 'guard': None,
                                         'detail': 'never started'}
            else:
                self.records[test_id] = {
                    'outcome': 'skipped' if fixture['outcome'] == 'skipped' else 'error',
                    'seconds': None, 'guard': None,
                    'detail': f"[{fixture['name'].split(' ')[0]}] {fixture['detail']}"}


def class_of(test_id):
    return test_id.rsplit('.', 2)[-2]


_RUNNING = set()
_RUNNING_LOCK = threading.Lock()


def _stop_workers(signum, frame):
    with _RUNNING_LOCK:
        for run in _RUNNING:
            if run.process is not None:
                run.kill()
    sys.stderr.write('compat: interrupted, workers stopped\n')
    os._exit(130)


def run(options, progress=print):
    """Run the suite; -> the results: {'meta', 'modules', 'tests'}."""
    signal.signal(signal.SIGTERM, _stop_workers)
    signal.signal(signal.SIGINT, _stop_workers)
    modules = options.modules or discover_modules(sys.executable)
    workdir = tempfile.mkdtemp(prefix='compat-', dir=options.log_dir)
    queue = [ModuleRun(module, options, workdir) for module in modules]
    runs = list(queue)
    lock = threading.Lock()
    done = []

    def work():
        while True:
            with lock:
                if not queue:
                    return
                module_run = queue.pop(0)
            with _RUNNING_LOCK:
                _RUNNING.add(module_run)
            module_run.run()
            with _RUNNING_LOCK:
                _RUNNING.discard(module_run)
            with lock:
                done.append(module_run)
                progress(progress_line(module_run, len(done), len(runs)))

    began = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(max(1, options.jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = gather(runs, options, time.monotonic() - began)
    if options.log_dir:
        results['meta']['logs'] = workdir
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def progress_line(module_run, number, total):
    outcomes = [r['outcome'] for r in module_run.records.values()]
    passed = sum(o in ('passed', 'expected_failure') for o in outcomes)
    other = len(outcomes) - passed
    text = (f'[{number:2}/{total}] {module_run.module:24} {len(outcomes):4} tests, '
            f'{passed} passed, {other} not  ({module_run.seconds:.0f} s)')
    if module_run.skipped:
        text += f'  skipped: {module_run.skipped}'
    if module_run.launches > 1:
        text += f'  [{module_run.launches} workers]'
    return text


def gather(runs, options, seconds):
    target = next((r.target for r in runs if r.target), None)
    shims = {}
    tests, modules = {}, {}
    for r in runs:
        for name, count in r.shims.items():
            shims[name] = shims.get(name, 0) + count
        modules[r.module] = {'seconds': round(r.seconds, 1), 'workers': r.launches,
                             'notes': r.notes, 'skipped': r.skipped, 'broken': r.broken,
                             'unclassified': r.unclassified}
        for test_id, test_set, _why in r.plan or ():
            tests[test_id] = test_record(r.records[test_id], test_set)
    meta = {
        'loop': options.loop, 'target': target, 'sets': options.sets,
        'python': platform.python_version(), 'seconds': round(seconds, 1),
        'jobs': options.jobs, 'timeout': options.timeout, 'run_replaced': options.run_replaced,
        'guard_selftest': options.guard_selftest, 'shims_used': shims,
    }
    return {'meta': meta, 'modules': modules, 'tests': tests}


def test_record(record, test_set):
    """What the JSON keeps of a test: outcome, set, guard verdict, and the rest when telling."""
    kept = {'outcome': record['outcome'], 'set': test_set, 'guard': None}
    if record['seconds'] is not None:
        kept['seconds'] = round(record['seconds'], 2)
    for key in ('detail', 'restored'):
        if record.get(key):
            kept[key] = record[key]
    guard = record['guard']
    if guard:
        kept['guard'] = guard['verdict']
        if guard.get('partial'):
            kept['guard_partial'] = True
        if guard['verdict'] != 'target':
            kept['loops'] = guard['loops']
        if guard['target_ran'] is False and guard['verdict'] != 'none':
            kept['target_ran'] = False
    return kept


def save(results, path):
    """One test a line, sorted, so that two runs compare with diff."""
    with open(path, 'w') as f:
        meta = json.dumps(results['meta'], sort_keys=True)
        modules = json.dumps(results['modules'], sort_keys=True)
        f.write(f'{{"meta": {meta},\n"modules": {modules},\n"tests": {{\n')
        lines = [f'{json.dumps(test_id)}: {json.dumps(record, sort_keys=True)}'
                 for test_id, record in sorted(results['tests'].items())]
        f.write(',\n'.join(lines) + '\n}}\n')


def load(path):
    with open(path) as f:
        return json.load(f)
