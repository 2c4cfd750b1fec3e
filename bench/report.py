"""The report: the Markdown table (also printed) and the JSON with every sample."""

import json

from bench.loops import WATCHED
from bench.results import ERROR, OK, Cell
from bench.sessions import PER_CPU_SECOND
from bench.workloads import NATIVE

# Other processes' share of the CPUs above which the report says the run was noisy.
NOISY_SHARE = 0.05
# The loops ferroloop's ratios are given to, in the table's order.
OTHERS = ('uvloop', 'rloop', 'asyncio')

GROUPS = {
    'echo tcp': 'Echo over TCP loopback (requests/s)',
    'echo unix': 'Echo over Unix sockets (requests/s)',
    'http': 'HTTP/1.1 keep-alive, uvicorn (httptools or h11), wrk (requests/s)',
    'micro': 'Micro benchmarks (operations/s)',
}


def rate(value):
    if value >= 1e6:
        return f'{value / 1e6:.2f}M'
    if value >= 1e5:
        return f'{value / 1e3:.0f}k'
    if value >= 1e3:
        return f'{value / 1e3:.1f}k'
    return f'{value:.0f}'


def spread(cell):
    """``median (min–max)``, or what became of the cell."""
    if cell is None:
        return ''
    if not cell.samples:
        return cell.status
    text = rate(cell.median)
    if len(cell.samples) > 1:
        text += f' ({rate(cell.low)}–{rate(cell.high)})'
    return text + (' ⚠' if cell.status == ERROR else '')


def ratio(cell, base, detail=None):
    """cell ÷ base, of the medians of the figure (or of a detail)."""
    if cell is None or base is None or not cell.samples or not base.samples:
        return 'n/a'
    mine, theirs = ((cell.median, base.median) if detail is None
                    else (cell.median_of(detail), base.median_of(detail)))
    if not mine or not theirs:
        return 'n/a'
    return f'{mine / theirs:.2f}×'


def best(cells):
    """The cell with the highest median among those that ran."""
    ran = [cell for cell in cells if cell is not None and cell.samples]
    return max(ran, key=lambda cell: cell.median, default=None)


def summarize(cells):
    """Cells by (workload key, loop)."""
    return {(cell.workload.key, cell.runner): cell for cell in cells}


def table(cells, loops):
    """The Markdown sections, one per group that has cells."""
    index = summarize(cells)
    has = set(loops)
    sections = []
    for group, title in GROUPS.items():
        workloads = list({cell.workload.key: cell.workload for cell in cells
                          if cell.workload.group == group}.values())
        if not workloads:
            continue
        with_ceiling = any(workload.ceiling for workload in workloads)
        header = ['workload', *loops]
        others = [base for base in OTHERS if base in has] if 'ferroloop' in has else []
        header += [f'ferroloop ÷ {base}' for base in others]
        if len(others) > 1:
            header.append('ferroloop ÷ best other')
        if {'uvloop', 'ferroloop'} <= has:
            header.append('÷ uvloop per CPU-s')
        if {WATCHED, 'ferroloop'} <= has:
            header.append('watched ÷ ferroloop')
        if with_ceiling:
            header += ['native ceiling'] + (['ferroloop ÷ native'] if 'ferroloop' in has else [])
        rows = [header, ['---'] * len(header)]
        for workload in workloads:
            mine = {loop: index.get((workload.key, loop)) for loop in loops}
            row = [workload.label] + [spread(mine[loop]) for loop in loops]
            row += [ratio(mine['ferroloop'], mine[base]) for base in others]
            if len(others) > 1:
                row.append(ratio(mine['ferroloop'], best(mine[base] for base in others)))
            if {'uvloop', 'ferroloop'} <= has:
                row.append(ratio(mine['ferroloop'], mine['uvloop'], PER_CPU_SECOND))
            if {WATCHED, 'ferroloop'} <= has:
                row.append(ratio(mine[WATCHED], mine['ferroloop']))
            if with_ceiling:
                native = index.get((workload.ceiling, NATIVE))
                row.append(spread(native))
                if 'ferroloop' in has:
                    row.append(ratio(mine['ferroloop'], native))
            rows.append(row)
        lines = ['| ' + ' | '.join(row) + ' |' for row in rows]
        sections.append(f'### {title}\n\n' + '\n'.join(lines))
    return '\n\n'.join(sections)


def notes(cells):
    """Why cells show n/a, skipped or error, one line per distinct reason."""
    reasons = {}
    for cell in cells:
        if cell.status != OK:
            key = (cell.status, cell.runner, cell.reason)
            reasons.setdefault(key, []).append(cell.workload.key)
    lines = []
    for (status, runner, reason), keys in sorted(reasons.items()):
        lines.append(f'- **{status}** on {runner} ({", ".join(keys)}): {reason}')
    return '\n'.join(lines)


def markdown(cells, meta):
    settings = meta['settings']
    versions = ', '.join(f'{name} {version}' for name, version in meta['versions'].items())
    others = meta.get('others_cpu_share', 0)
    head = [
        '# ferroloop benchmark results', '',
        (f'{meta["started"]} · commit `{meta["commit"]}` · Python {meta["python"]} · '
        f'{meta["cpu"]}, {meta["cpus"]} CPUs · the suite took {meta["elapsed_s"] / 60:.1f} min · '
        f'load average {meta["load_before"]} before, {meta["load_after"]} after · '
        f'other processes used {others:.0%} of the CPUs meanwhile · '
        f'{meta.get("retried_runs", 0)} runs measured again because others disturbed them'), '',
        (f'Median of {settings["rounds"]} rounds, (min–max) beside it; the loops take turns round '
        f'by round. Echo: {settings["echo_warmup"]} s warmup + {settings["echo_duration"]} s '
        f'counted per run; HTTP: {settings["http_duration"]} s of wrk per run; micro: '
        f'{settings["micro_scale"]:g}× the full counts. Servers on CPU {meta["server_cpu"]}, '
        f'load generators on CPU {meta["client_cpu"]}. Versions: {versions}.'), '',
        ('n/a: the loop raised NotImplementedError for this workload (see the notes). '
         'ferroloop ÷ best other: to whichever other loop did best on the row. '
         '÷ uvloop per CPU-s: the same ratio, of requests (operations) per second of CPU time '
         'the server (the micro benchmark) got, which other processes on the machine move less.'),
    ]
    if others > NOISY_SHARE:
        head += ['', (f'**Noisy run:** other processes used {others:.0%} of the CPUs while '
                      'the suite ran; the spreads show how much that moved the figures.')]
    tail = notes(cells)
    return ('\n'.join(head) + '\n\n' + table(cells, meta['loops'])
            + ('\n\n### Notes\n\n' + tail if tail else '') + '\n')


def write_json(path, cells, meta):
    path.write_text(json.dumps({'meta': meta, 'results': [cell.as_json() for cell in cells]},
                               indent=1) + '\n')


def read_json(path):
    """(cells, meta) as ``write_json`` saved them."""
    saved = json.loads(path.read_text())
    workloads = {}
    return [Cell.from_json(item, workloads) for item in saved['results']], saved['meta']
