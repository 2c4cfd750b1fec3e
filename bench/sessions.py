"""Sessions: the cells measured together, round by round (A B C A B C ...), with their
servers up for the whole session. One session per echo load (its three Python servers on
every loop, and the native ceiling), one for HTTP, one for the micro benchmarks."""

import json
import re
import sys

from bench.processes import (
    CLIENT_CPU,
    SERVER_CPU,
    BenchmarkError,
    NotAvailable,
    ServerProcess,
    run_client,
)
from bench.results import ERROR, NOT_AVAILABLE, Cell
from bench.workloads import NATIVE

# The detail that counts requests (operations) per second of CPU time the server (the benchmark
# process) got: on a shared machine, less moved by other processes than the per-second figure.
PER_CPU_SECOND = 'per_cpu_s'


class Session:
    def __init__(self, cells):
        self.cells = cells

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def measure(self, cell):
        """One run of ``cell``: (figure per second, details); raises NotAvailable or
        BenchmarkError."""
        raise NotImplementedError


class ServerSession(Session):
    """A session whose cells each have a server, started together when the session opens."""

    def __init__(self, cells):
        super().__init__(cells)
        self.servers = {}

    def server_command(self, cell):
        raise NotImplementedError

    def __enter__(self):
        starting = {id(cell): ServerProcess(f'{cell.workload.key} on {cell.runner}',
                                            self.server_command(cell)) for cell in self.cells}
        for cell in self.cells:
            server = starting[id(cell)]
            try:
                server.wait_ready()
            except NotAvailable as error:
                cell.settle(NOT_AVAILABLE, str(error))
                server.stop()
            except BenchmarkError as error:
                cell.settle(ERROR, str(error))
                server.stop()
            else:
                self.servers[id(cell)] = server
        return self

    def __exit__(self, *exc_info):
        for server in self.servers.values():
            server.stop()

    def measure(self, cell):
        server = self.servers[id(cell)]
        server.check_alive()
        cpu_before = server.cpu_seconds()
        try:
            value, detail, served = self.load(cell, server.endpoint)
        except BenchmarkError:
            server.check_alive()  # a dead server is the better explanation
            raise
        cpu = server.cpu_seconds() - cpu_before
        detail['server_cpu_s'] = round(cpu, 3)
        detail[PER_CPU_SECOND] = served / cpu if cpu > 0 else None
        return value, detail

    def load(self, cell, endpoint):
        """(figure per second, details, requests served over the whole run, warmup included)."""
        raise NotImplementedError


class EchoSession(ServerSession):
    def __init__(self, cells, settings, socket_dir, loadgen, native_echo):
        super().__init__(cells)
        self.settings = settings
        self.socket_dir = socket_dir
        self.loadgen = loadgen
        self.native_echo = native_echo

    def server_command(self, cell):
        variant, transport, _, _ = cell.workload.params
        if transport == 'tcp':
            listen = 'tcp:127.0.0.1:0'
        else:
            # One path per cell: a killed server leaves its socket file behind.
            listen = f'unix:{self.socket_dir}/{cell.workload.key}-{cell.runner}.sock'
        if cell.runner == NATIVE:
            return [str(self.native_echo), '--listen', listen]
        return [sys.executable, '-m', f'bench.servers.echo_{variant}', '--loop', cell.runner,
                '--listen', listen]

    def load(self, cell, endpoint):
        _, _, size, connections = cell.workload.params
        settings = self.settings
        output = run_client(
            f'loadgen against {cell.workload.key} on {cell.runner}',
            [str(self.loadgen), '--connect', endpoint, '--connections', str(connections),
             '--size', str(size), '--warmup', str(settings.echo_warmup),
             '--duration', str(settings.echo_duration)],
            cpu=CLIENT_CPU, timeout=settings.echo_warmup + settings.echo_duration + 30)
        result = json.loads(output)
        detail = {'latency_us': result['latency_us']}
        return result['requests_per_s'], detail, result['all_requests']


class HttpSession(ServerSession):
    def __init__(self, cells, settings, connections):
        super().__init__(cells)
        self.settings = settings
        self.connections = connections

    def server_command(self, cell):
        module, = cell.workload.params
        return [sys.executable, '-m', module, '--loop', cell.runner]

    def __enter__(self):
        super().__enter__()
        if self.settings.http_warmup:
            for cell in self.cells:
                if not cell.done:
                    self.wrk(cell, self.servers[id(cell)].endpoint, self.settings.http_warmup)
        return self

    def load(self, cell, endpoint):
        return self.wrk(cell, endpoint, self.settings.http_duration)

    def wrk(self, cell, endpoint, seconds):
        url = f'http://{endpoint.removeprefix("tcp:")}/'
        output = run_client(
            f'wrk against {cell.workload.key} on {cell.runner}',
            ['wrk', '-t1', f'-c{self.connections}', f'-d{seconds}s', '--latency', url],
            cpu=CLIENT_CPU, timeout=seconds + 30)
        return parse_wrk(output)


_WRK_UNITS_US = {'us': 1.0, 'ms': 1000.0, 's': 1_000_000.0}


def parse_wrk(output):
    """(requests/s, {'latency_us': {'p50', 'p99'}}, requests served) from wrk's report; a
    non-2xx answer or a socket error fails the run."""
    rate = re.search(r'^Requests/sec:\s+([\d.]+)', output, re.MULTILINE)
    if rate is None:
        raise BenchmarkError(f'wrk printed no Requests/sec: {output!r}')
    # wrk prints these lines only when there is something to count.
    for line in output.splitlines():
        if 'Non-2xx or 3xx responses' in line or 'Socket errors' in line:
            raise BenchmarkError(f'wrk: {line.strip()}')
    latency = {}
    for percent, key in (('50', 'p50'), ('99', 'p99')):
        found = re.search(rf'^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$', output, re.MULTILINE)
        if found:
            latency[key] = float(found[1]) * _WRK_UNITS_US[found[2]]
    served = re.search(r'^\s+(\d+) requests in', output, re.MULTILINE)
    return float(rate[1]), {'latency_us': latency}, int(served[1]) if served else 0


class MicroSession(Session):
    def __init__(self, cells, settings):
        super().__init__(cells)
        self.settings = settings

    def measure(self, cell):
        (name,) = cell.workload.params
        output = run_client(
            f'micro benchmark {name} on {cell.runner}',
            [sys.executable, '-m', 'bench.micro', '--loop', cell.runner, '--bench', name,
             '--scale', str(self.settings.micro_scale)],
            cpu=SERVER_CPU, timeout=300)
        result = json.loads(output)
        detail = {'ops': result['ops'], 'seconds': result['seconds'], 'cpu_s': result['cpu_s'],
                  PER_CPU_SECOND: result['ops_per_cpu_s']}
        return result['ops_per_s'], detail


def new_cells(workload):
    return [Cell(workload, runner) for runner in workload.runners]
