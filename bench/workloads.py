"""What the suite measures: every workload, the loops it runs on, and how long each run lasts
in the full and the quick suite."""

from dataclasses import dataclass

from bench.loops import LOOPS
from bench.micro import BENCHMARKS

ECHO_VARIANTS = ('protocol', 'streams', 'sock')
ECHO_TRANSPORTS = ('tcp', 'unix')
# (message size, concurrent connections): the three sizes at 10 connections, and
# 100 connections at 1 KiB.
ECHO_SHAPES = ((1024, 10), (10 * 1024, 10), (100 * 1024, 10), (1024, 100))
HTTP_CONNECTIONS = 10
NATIVE = 'native'


@dataclass(frozen=True)
class Settings:
    rounds: int
    echo_warmup: float     # seconds of load before counting, per run (new connections each run)
    echo_duration: float   # seconds counted, per run
    http_warmup: int       # seconds of wrk per server before round 1 (wrk counts whole seconds)
    http_duration: int     # seconds of wrk per run
    micro_scale: float     # fraction of each micro benchmark's full count
    retry_budget: float    # seconds the suite may spend measuring disturbed runs again


# Full: about 11 minutes once every loop runs every workload, plus at most 1.5 of retries.
FULL = Settings(rounds=3, echo_warmup=0.3, echo_duration=1.5, http_warmup=1, http_duration=3,
                micro_scale=1.0, retry_budget=90.0)
QUICK = Settings(rounds=2, echo_warmup=0.1, echo_duration=0.4, http_warmup=0, http_duration=1,
                 micro_scale=0.05, retry_budget=10.0)


@dataclass(frozen=True)
class Workload:
    key: str                # stable name in the JSON and for --only
    group: str              # the table section and chart panel it belongs to
    label: str              # its row in the table
    unit: str               # what the figure counts per second
    runners: tuple          # the loops it runs on, or (NATIVE,) for the ceiling
    ceiling: str = None     # key of the native workload with the same load (echo only)
    # Echo: variant, transport, size, connections; micro: benchmark name and count.
    params: tuple = ()
    short: str = None       # its label in the chart, where room is scarce (default: label)

    @property
    def chart_label(self):
        return self.short or self.label


def size_label(size):
    return f'{size // 1024} KiB' if size % 1024 == 0 else f'{size} B'


def echo_shape_key(transport, size, connections):
    return f'{transport}-{size // 1024}k-c{connections}'


def native_workload(transport, size, connections):
    shape = echo_shape_key(transport, size, connections)
    return Workload(f'echo-native-{shape}', 'native',
                    f'native Rust, {size_label(size)} × {connections}', 'req/s', (NATIVE,),
                    params=('native', transport, size, connections))


def echo_workloads(transport, size, connections, loops=LOOPS):
    """The three Python echo servers under one load; their ceiling is ``native_workload``'s."""
    shape = echo_shape_key(transport, size, connections)
    return [Workload(f'echo-{variant}-{shape}', f'echo {transport}',
                     f'{variant}, {size_label(size)} × {connections}', 'req/s', tuple(loops),
                     ceiling=f'echo-native-{shape}', params=(variant, transport, size, connections))
            for variant in ECHO_VARIANTS]


# uvicorn's two HTTP parsers: httptools (C) and h11 (pure Python, its default without extras).
HTTP_PARSERS = {'httptools': 'bench.servers.http_asgi', 'h11': 'bench.servers.http_h11'}


def http_workloads(loops=LOOPS):
    # httptools' key has no parser in it: it was the only HTTP row, and results keep its key.
    return [Workload(f'http-uvicorn-c{HTTP_CONNECTIONS}' if parser == 'httptools'
                     else f'http-uvicorn-{parser}-c{HTTP_CONNECTIONS}', 'http',
                     f'uvicorn + {parser}, {HTTP_CONNECTIONS} connections', 'req/s', tuple(loops),
                     params=(HTTP_PARSERS[parser],))
            for parser in HTTP_PARSERS]


def micro_workloads(scale, loops=LOOPS):
    workloads = []
    for name, (_, full_count, what) in BENCHMARKS.items():
        count = max(1, round(full_count * scale))
        workloads.append(Workload(f'micro-{name}', 'micro', f'{name}: {count:,} {what}', 'ops/s',
                                  tuple(loops), params=(name,), short=f'{name} × {count:,}'))
    return workloads
