"""The text report of a run: tables per set, the guard's figures, failures grouped by cause."""

import re
from collections import Counter, defaultdict

COLUMNS = ['passed', 'failed', 'error', 'skipped', 'timeout', 'crash']
BUCKET = {'expected_failure': 'passed', 'unexpected_success': 'failed', 'not_run': 'crash'}
TITLES = {
    'a': 'set (a): public asyncio API on the loop under test',
    'b': 'set (b): asyncio internals, fake and mocked loops (not held against the loop)',
    'unclassified': 'unclassified: not in tests/compat/classification.py or versions.py',
}


def bucket(outcome):
    return BUCKET.get(outcome, outcome if outcome in COLUMNS else 'error')


def short_id(test_id):
    return test_id.split('test_asyncio.', 1)[-1]


def counts(records):
    row = Counter(bucket(r['outcome']) for r in records)
    row['total'] = len(records)
    row['on target'] = sum(r.get('guard') == 'target' for r in records)
    return row


def table(rows, first, with_guard):
    head = [first, *COLUMNS, 'total'] + (['on target'] if with_guard else [])
    body = [[name, *(str(row[c]) for c in head[1:])] for name, row in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def line(cells):
        return '  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(head), line(['-' * w for w in widths]), *map(line, body)]


def set_tables(items, with_guard, per_class):
    by_module, by_class = defaultdict(list), defaultdict(list)
    for test_id, record in items:
        module, cls, _ = short_id(test_id).split('.')
        by_module[module].append(record)
        by_class[f'{module}.{cls}'].append(record)
    rows = [(name, counts(records)) for name, records in sorted(by_module.items())]
    rows.append(('total', counts([record for _, record in items])))
    lines = table(rows, 'module', with_guard)
    if per_class:
        lines += [''] + table([(name, counts(records)) for name, records in sorted(by_class.items())],
                              'class', with_guard)
    return lines


def guard_lines(items, meta):
    verdicts = Counter(record.get('guard') or 'no record (hung, crashed, not run)'
                       for _, record in items)
    ran = sum(record.get('guard') == 'target' and 'target_ran' not in record
              and not record.get('guard_partial') for _, record in items)
    lines = [f"guard, set (a): which loops each test made or ran (target: {meta['target']})"]
    lines += [f'  {verdict:40} {count:5}' for verdict, count in verdicts.most_common()]
    lines.append(f"  {'target observed running':40} {ran:5} of {len(items)}")
    partial = sum(bool(record.get('guard_partial')) for _, record in items)
    if partial:
        lines.append(f'  ({partial} verdicts come from tests that hung or crashed: the loops '
                     'seen before)')
    off = [(test_id, record) for test_id, record in items
           if record.get('guard') not in ('target', None)]
    for test_id, record in off[:15]:
        lines.append(f"  {record['guard']:8} {short_id(test_id)}  {record.get('loops')}")
    if len(off) > 15:
        lines.append(f'  ... and {len(off) - 15} more')
    if meta.get('guard_selftest'):
        lines.append('  guard self-test: the routing was sabotaged, every verdict should be other')
    restored = Counter(what.split(' of ')[0] for _, record in items
                       for what in record.get('restored', ()))
    if restored:
        lines.append('  state left changed and put back: '
                     + ', '.join(f'{what} {count}' for what, count in sorted(restored.items())))
    if meta.get('shims_used'):
        lines.append(f"  test_utils helpers that had to step in: {meta['shims_used']}")
    return lines


_VARYING = [(re.compile(r'0x[0-9a-f]+'), '0x?'), (re.compile(r'\d+(\.\d+)?'), 'N')]


def cause(detail):
    """A failure's detail without addresses and numbers, so that alike failures group."""
    text = (detail or '').replace('[subtest] ', '')
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return text[:120]


def failure_lines(items, verbose):
    failing = [(test_id, record) for test_id, record in items
               if bucket(record['outcome']) not in ('passed', 'skipped')]
    if not failing:
        return []
    groups = defaultdict(list)
    for test_id, record in failing:
        groups[(bucket(record['outcome']), cause(record.get('detail')))].append(test_id)
    lines = ['failures, set (a), by cause:']
    for (outcome, text), ids in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:25]:
        lines.append(f'  {len(ids):4} {outcome:8} {text}')
        lines.append(f'       e.g. {short_id(ids[0])}')
    if verbose:
        lines.append('every failing set-(a) test:')
        lines += [f"  {record['outcome']:10} {short_id(test_id)}  {record.get('detail', '')[:160]}"
                  for test_id, record in sorted(failing)]
    return lines


def render(results, verbose=False):
    meta, tests = results['meta'], results['tests']
    lines = [(f"CPython {meta['python']} test.test_asyncio on {meta['loop']} ({meta['target']}): "
              f"{meta['seconds']} s, {meta['jobs']} module(s) at a time, "
              f"{meta['timeout']:g} s per test at most")]
    by_set = defaultdict(list)
    for test_id, record in sorted(tests.items()):
        by_set[record['set']].append((test_id, record))
    for name in ('a', 'b', 'unclassified'):
        if by_set.get(name):
            lines += ['', TITLES[name]]
            lines += set_tables(by_set[name], with_guard=name == 'a', per_class=name == 'a' or verbose)
    if by_set.get('a'):
        lines += ['', *guard_lines(by_set['a'], meta)]
        failures = failure_lines(by_set['a'], verbose)
        if failures:
            lines += ['', *failures]
    left_out = {module: info['unclassified'] for module, info in results['modules'].items()
                if info.get('unclassified')}
    if left_out:
        lines += ['', 'unclassified tests, not run (classify them in tests/compat/versions.py):']
        for module, ids in sorted(left_out.items()):
            per_class = Counter(short_id(test_id).split('.')[1] for test_id in ids)
            lines.append(f'  {module}: ' + ', '.join(f'{cls} ({n})' for cls, n in sorted(per_class.items())))
    notes = [f'{module}: {note}' for module, info in sorted(results['modules'].items())
             for note in info['notes']]
    notes += [f"{module}: skipped ({info['skipped']})"
              for module, info in sorted(results['modules'].items()) if info.get('skipped')]
    notes += [f"{module}: NOT RUN, {info['broken']}"
              for module, info in sorted(results['modules'].items()) if info.get('broken')]
    if notes:
        lines += ['', 'notes:', *(f'  {note}' for note in notes)]
    return '\n'.join(lines)
