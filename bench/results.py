"""One cell of the results: a workload on one loop, its samples (one per round) and what
became of it."""

import statistics
from dataclasses import dataclass, field

from bench.workloads import Workload

OK, NOT_AVAILABLE, ERROR, SKIPPED = 'ok', 'n/a', 'error', 'skipped'


@dataclass
class Cell:
    workload: Workload
    runner: str                                  # a loop name, or 'native'
    samples: list = field(default_factory=list)  # figures per second, one per round
    details: list = field(default_factory=list)  # what else each run reported (latencies, ...)
    status: str = OK
    reason: str = ''                             # why n/a, skipped or failed

    @property
    def done(self):
        """No more rounds for this cell: it cannot run, or it failed (a crash is reported,
        not retried until it happens to pass)."""
        return self.status != OK

    def add(self, value, detail):
        self.samples.append(value)
        self.details.append(detail)

    def settle(self, status, reason):
        self.status, self.reason = status, reason

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else None

    def median_of(self, detail):
        """The median of one detail over the runs that reported it."""
        values = [d[detail] for d in self.details if d.get(detail) is not None]
        return statistics.median(values) if values else None

    @property
    def low(self):
        return min(self.samples) if self.samples else None

    @property
    def high(self):
        return max(self.samples) if self.samples else None

    def as_json(self):
        workload = self.workload
        return {
            'workload': workload.key, 'group': workload.group, 'label': workload.label,
            'unit': workload.unit, 'loop': self.runner, 'status': self.status,
            'reason': self.reason or None, 'samples': self.samples, 'median': self.median,
            'min': self.low, 'max': self.high, 'details': self.details,
            'ceiling': workload.ceiling, 'short': workload.short, 'params': list(workload.params),
        }

    @classmethod
    def from_json(cls, item, workloads):
        """The cell ``as_json`` wrote; ``workloads`` shares Workload objects between cells."""
        workload = workloads.get(item['workload'])
        if workload is None:
            workload = workloads[item['workload']] = Workload(
                item['workload'], item['group'], item['label'], item['unit'], (),
                ceiling=item.get('ceiling'), params=tuple(item.get('params') or ()),
                short=item.get('short'))
        return cls(workload, item['loop'], item['samples'], item['details'], item['status'],
                   item['reason'] or '')
