"""The chart: requests (or operations) per second per loop and workload, as grouped
horizontal bars on a log scale (so a ratio looks the same size at any rate), whiskers from
the slowest to the fastest round, one panel per table section."""

import matplotlib

matplotlib.use('Agg')  # no display: the suite writes a PNG

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from bench.report import GROUPS, rate
from bench.workloads import NATIVE

COLOURS = {'asyncio': '#5b84b1', 'uvloop': '#e3a33b', 'rloop': '#6a9f58', 'ferroloop': '#b7410e',
           'ferroloop-watched': '#e07b53',
           NATIVE: '#a0a0a0'}
ROW_INCHES = 0.42


def _panel(axes, title, workloads, runners, index):
    """One group: a row per workload, a bar per runner (the native ceiling last)."""
    height = 0.8 / len(runners)
    values = [cell.median for cell in index.values() if cell.samples]
    floor = min(values) / 3 if values else 1
    for position, runner in enumerate(runners):
        for row, workload in enumerate(workloads):
            key = workload.ceiling if runner == NATIVE else workload.key
            cell = index.get((key, runner))
            y = row + (position - (len(runners) - 1) / 2) * height
            if cell is None or not cell.samples:
                axes.text(floor * 1.05, y, cell.status if cell else 'not run', va='center',
                          fontsize=6, color=COLOURS[runner])
                continue
            axes.barh(y, cell.median, height=height, color=COLOURS[runner],
                      xerr=[[cell.median - cell.low], [cell.high - cell.median]],
                      error_kw={'elinewidth': 0.7, 'capsize': 1.5, 'ecolor': '#333333'})
            axes.text(cell.high * 1.06, y, rate(cell.median), va='center', fontsize=6)
    axes.set_xscale('log')
    axes.set_xlim(left=floor)
    axes.set_yticks(range(len(workloads)), [w.chart_label for w in workloads], fontsize=8)
    axes.xaxis.set_minor_formatter(NullFormatter())  # 2×10³ 3×10³ ... would overlap
    axes.invert_yaxis()
    axes.set_title(title, fontsize=10, loc='left')
    axes.grid(axis='x', which='both', color='#e6e6e6', linewidth=0.6)
    axes.set_axisbelow(True)
    axes.tick_params(axis='x', labelsize=7)
    # Room on the right for the labels beyond the longest bar.
    axes.set_xlim(right=axes.get_xlim()[1] * 2.2)


def _panels(cells, loops):
    """(title, workloads, runners) per group, in the table's order."""
    panels = []
    for group, title in GROUPS.items():
        workloads = list({cell.workload.key: cell.workload for cell in cells
                          if cell.workload.group == group}.values())
        if workloads:
            ceiling = any(workload.ceiling for workload in workloads)
            panels.append((group, title, workloads, [*loops] + ([NATIVE] if ceiling else [])))
    return panels


def write_png(path, cells, meta):
    index = {(cell.workload.key, cell.runner): cell for cell in cells}
    panels = _panels(cells, meta['loops'])
    if not panels:
        return
    # Echo panels on the left, the rest on the right (one column if either side is empty).
    columns = [[p for p in panels if p[0].startswith('echo')],
               [p for p in panels if not p[0].startswith('echo')]]
    columns = [column for column in columns if column]
    rows_per_column = [sum(len(p[2]) + 2 for p in column) for column in columns]
    figure = plt.figure(figsize=(8 * len(columns), max(rows_per_column) * ROW_INCHES + 1.2),
                        layout='constrained')
    subfigures = figure.subfigures(1, len(columns), squeeze=False)[0]
    for subfigure, column, rows in zip(subfigures, columns, rows_per_column):
        weights = [len(p[2]) + 2 for p in column] + [max(rows_per_column) - rows]
        grid = subfigure.add_gridspec(len(weights), 1,
                                      height_ratios=[max(w, 0.01) for w in weights])
        for slot, (group, title, workloads, runners) in enumerate(column):
            _panel(subfigure.add_subplot(grid[slot]), title, workloads, runners,
                   {key: cell for key, cell in index.items()
                    if cell.workload.group == group
                    or (cell.runner == NATIVE and any(w.ceiling == key[0] for w in workloads))})
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[name])
               for name in [*meta['loops'], NATIVE]]
    labels = [*meta['loops'], 'native Rust echo (the ceiling)']
    figure.legend(handles, labels, loc='outside lower center', ncols=len(labels), fontsize=9)
    figure.suptitle(f'ferroloop vs uvloop, rloop and asyncio — median of {meta["settings"]["rounds"]} '
                    f'rounds, whiskers min–max, log scale · {meta["started"]}', fontsize=11)
    figure.savefig(path, dpi=100)
    plt.close(figure)
