"""What the fuzz did in this pytest run, for the summary at its end (see conftest.py)."""

import time

STATS = {'examples': 0, 'calls': 0, 'seconds': 0.0, 'methods': set(), 'method_count': None,
         'started': None}


def record(scenario, seconds):
    if STATS['started'] is None:
        STATS['started'] = time.monotonic() - seconds
    STATS['examples'] += 1
    STATS['calls'] += len(scenario['steps'])
    STATS['seconds'] += seconds
    STATS['methods'].update((target, method) for target, method, *_ in scenario['steps'])


def set_method_count(count):
    STATS['method_count'] = count


def summary():
    if not STATS['examples']:
        return None
    lines = [f"fuzz: {len(STATS['methods'])} methods called"
             + (f" (of {STATS['method_count']} public methods)" if STATS['method_count'] else '')
             + f", {STATS['examples']} scenarios, {STATS['calls']} calls, each on asyncio and "
             f"ferroloop, in {STATS['seconds']:.0f} s"]
    return '\n'.join(lines)
