"""A library suite's two runs compared: what ferroloop breaks, against the known differences.

Each run is the JSON-lines file of ferroloop_suite_plugin.py: one line per test, with its
outcome (passed, failed, skipped, xfailed) and, on ferroloop, whether a ferroloop loop ran.
A test fails *on ferroloop* when it passes on asyncio's loop (passed or xfailed) and failed on
ferroloop or never finished there (a crash or a hang ends a run early). Such a test breaks the
run unless known_differences/<library>.txt lists it, one test id a line, ``# cause`` after it,
or it is a knock-on: it failed only by a leak's warning (pytest's unraisable-exception check),
right after a test that failed on ferroloop, in the same worker. The plugin collects garbage
after each failure so that what a failed test leaks warns there or in the next test; the
failed test is the one reported (and listed).

unrouted/<library>.txt lists the tests of the library's own loop choice, which the ferroloop
run leaves on that choice (asyncio's loop): they are not run on ferroloop, so they count
neither as passing nor as failing there, and are reported apart. One that fails in the
ferroloop run while passing in asyncio's, or in which a ferroloop loop ran after all, breaks
the run: the routing was not taken away as the list says.

flaky/<library>.txt lists the tests whose outcome depends on the timing of what ran before
them, on both loops (each line says what and gives the evidence). One that failed is run
again, with the rest of its file, up to a few times on the loop it failed on
(scripts/library_suites.py); its outcome is its last run's, and its history is reported. A
failure that every rerun repeats counts as any other.
"""

import json
import os
from dataclasses import dataclass, field

PASSING = ('passed', 'xfailed')
HERE = os.path.dirname(os.path.abspath(__file__))


def read_results(path):
    """{test id: its line} of a run; a missing file (the run never started) is no test."""
    results = {}
    try:
        with open(path, encoding='utf-8') as lines:
            for line in lines:
                entry = json.loads(line)
                results[entry['id']] = entry
    except FileNotFoundError:
        pass
    return results


def list_path(kind, library):
    """<kind>/<library>.txt, kind one of known_differences, unrouted, flaky."""
    return os.path.join(HERE, kind, f'{library}.txt')


def read_list(path):
    """{test id: cause} of a list of tests (known differences, unrouted or flaky tests)."""
    known = {}
    with open(path, encoding='utf-8') as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            test_id, _, cause = line.partition(' #')
            test_id, cause = test_id.strip(), cause.strip()
            if not cause:
                raise ValueError(f'{path}:{number}: {test_id} has no "# cause"')
            if test_id in known:
                raise ValueError(f'{path}:{number}: {test_id} is listed twice')
            known[test_id] = cause
    return known


def counts(results):
    tally = dict.fromkeys(('passed', 'failed', 'skipped', 'xfailed'), 0)
    for entry in results.values():
        tally[entry['outcome']] += 1
    return tally


@dataclass
class Comparison:
    new_failures: list = field(default_factory=list)     # (id, message): break the run
    known_failures: list = field(default_factory=list)   # (id, cause)
    fixed: list = field(default_factory=list)            # listed, yet passes on both loops
    stale: list = field(default_factory=list)            # listed, yet did not pass on asyncio
    absent: list = field(default_factory=list)           # listed (any list), not run on asyncio
    knock_ons: list = field(default_factory=list)        # (id, the failed test before it)
    asyncio_failures: list = field(default_factory=list)  # (id, message): reported only
    skipped_on_ferroloop_only: list = field(default_factory=list)
    on_target: int = 0          # tests that ran on ferroloop in which a ferroloop loop ran
    off_target: list = field(default_factory=list)   # ran loops, none of them ferroloop's
    unrouted: list = field(default_factory=list)     # (id, outcome in the ferroloop run, loops)
    flaky: list = field(default_factory=list)        # (id, asyncio's outcomes, ferroloop's)
    unrouted_broken: list = field(default_factory=list)  # (id, why): break the run

    @property
    def ok(self):
        return not self.new_failures and not self.unrouted_broken


def predecessors(results):
    """{test id: the test its worker ran just before it}."""
    last_of_worker, before = {}, {}
    for test_id, entry in results.items():
        worker = entry.get('worker', '')
        if worker in last_of_worker:
            before[test_id] = last_of_worker[worker]
        last_of_worker[worker] = test_id
    return before


def is_knock_on(test_id, entry, results, before):
    previous = before.get(test_id)
    return (previous is not None and results[previous]['outcome'] == 'failed'
            and 'unraisable' in entry['message'].lower())


def with_reruns(results, reruns):
    """The run's results, each rerun test's outcome its last rerun's.
    reruns: {test id: [outcome of each rerun]}."""
    settled = dict(results)
    for test_id, outcomes in reruns.items():
        settled[test_id] = {**results[test_id], 'outcome': outcomes[-1]}
    return settled


def compare(on_asyncio, on_ferroloop, known, unrouted=(), flaky=(), reruns=None):
    """reruns: {'asyncio' or 'ferroloop': {test id: [outcome of each rerun]}}, of tests that
    `flaky` lists."""
    result = Comparison()
    reruns = reruns or {}
    for test_id in flaky:
        histories = [[run[test_id]['outcome'], *reruns.get(loop, {}).get(test_id, [])]
                     if test_id in run else []
                     for loop, run in (('asyncio', on_asyncio), ('ferroloop', on_ferroloop))]
        if any(histories):
            result.flaky.append((test_id, *histories))
    on_asyncio = with_reruns(on_asyncio, reruns.get('asyncio', {}))
    on_ferroloop = with_reruns(on_ferroloop, reruns.get('ferroloop', {}))
    before = predecessors(on_ferroloop)
    for test_id in unrouted:
        compare_unrouted(test_id, on_asyncio.get(test_id), on_ferroloop.get(test_id), result)
    for test_id, reference in on_asyncio.items():
        if test_id in unrouted:
            continue
        entry = on_ferroloop.get(test_id)
        outcome = entry['outcome'] if entry else 'missing'
        if reference['outcome'] == 'failed':
            result.asyncio_failures.append((test_id, reference['message']))
        elif reference['outcome'] in PASSING and outcome in ('failed', 'missing'):
            message = entry['message'] if entry else 'did not finish on ferroloop'
            if test_id in known:
                result.known_failures.append((test_id, known[test_id]))
            elif entry and is_knock_on(test_id, entry, on_ferroloop, before):
                result.knock_ons.append((test_id, before[test_id]))
            else:
                result.new_failures.append((test_id, message))
        elif reference['outcome'] in PASSING and outcome == 'skipped':
            result.skipped_on_ferroloop_only.append(test_id)
    for test_id, entry in on_ferroloop.items():
        if entry['outcome'] == 'skipped' or test_id in unrouted:
            continue
        if entry.get('on_target'):
            result.on_target += 1
        elif entry.get('loops'):
            result.off_target.append((test_id, entry['loops']))
    result.absent += [test_id for test_id in (*unrouted, *flaky) if test_id not in on_asyncio]
    for test_id in known:
        reference = on_asyncio.get(test_id)
        if reference is None:
            result.absent.append(test_id)
        elif reference['outcome'] not in PASSING:
            result.stale.append(test_id)
        elif on_ferroloop.get(test_id, {}).get('outcome') in PASSING:
            result.fixed.append(test_id)
    return result


def compare_unrouted(test_id, reference, entry, result):
    if entry is None:
        if reference is not None:
            result.unrouted_broken.append((test_id, 'did not finish in the ferroloop run'))
        return      # in neither run: absent
    result.unrouted.append((test_id, entry['outcome'], entry.get('loops', [])))
    if entry.get('on_target'):
        result.unrouted_broken.append((test_id, 'a ferroloop loop ran in it'))
    elif reference and reference['outcome'] in PASSING and entry['outcome'] == 'failed':
        result.unrouted_broken.append((test_id, f'failed off ferroloop: {entry["message"]}'))
