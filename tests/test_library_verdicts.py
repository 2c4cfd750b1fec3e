"""The verdict of a library suite's two runs (tests/libraries/verdicts.py, make test-libraries):
what breaks the run, what is only reported."""

import json

import pytest

from libraries import verdicts


def results(*entries):
    """{id: entry} from (id, outcome[, message[, extra]]) tuples, in run order."""
    made = {}
    for test_id, outcome, *rest in entries:
        message = rest[0] if rest else ''
        made[test_id] = {'id': test_id, 'outcome': outcome, 'message': message,
                         'worker': '', **(rest[1] if len(rest) > 1 else {})}
    return made


def test_a_test_passing_on_asyncio_and_failing_on_ferroloop_breaks_the_run():
    result = verdicts.compare(results(('t1', 'passed'), ('t2', 'xfailed')),
                              results(('t1', 'failed', 'call: boom'), ('t2', 'xfailed')), {})
    assert result.new_failures == [('t1', 'call: boom')]
    assert not result.ok


def test_a_test_that_never_finished_on_ferroloop_breaks_the_run():
    result = verdicts.compare(results(('t1', 'passed')), {}, {})
    assert result.new_failures == [('t1', 'did not finish on ferroloop')]


def test_listed_tests_are_known_and_those_passing_now_are_to_be_removed():
    known = {'t1': 'cause one', 't2': 'cause two', 't3': 'cause three', 'gone': 'old'}
    result = verdicts.compare(
        results(('t1', 'passed'), ('t2', 'passed'), ('t3', 'failed', 'env')),
        results(('t1', 'failed'), ('t2', 'passed'), ('t3', 'failed')), known)
    assert result.ok
    assert result.known_failures == [('t1', 'cause one')]
    assert result.fixed == ['t2']
    assert result.stale == ['t3']
    assert result.absent == ['gone']


def test_failures_on_asyncio_are_reported_not_counted():
    result = verdicts.compare(results(('t1', 'failed', 'setup: no ipv6')),
                              results(('t1', 'failed', 'setup: no ipv6')), {})
    assert result.ok
    assert result.asyncio_failures == [('t1', 'setup: no ipv6')]


def test_a_leak_warning_right_after_a_failed_test_of_its_worker_is_a_knock_on():
    leak = 'setup: pytest.PytestUnraisableExceptionWarning: Exception ignored in: Popen.__del__'
    on_asyncio = results(('a', 'passed'), ('b', 'passed'), ('c', 'passed'), ('d', 'passed'))
    on_ferroloop = results(('a', 'failed', 'call: boom', {'worker': 'gw0'}),
                           ('c', 'failed', leak, {'worker': 'gw1'}),
                           ('b', 'failed', leak, {'worker': 'gw0'}),
                           ('d', 'failed', 'call: AssertionError', {'worker': 'gw0'}))
    result = verdicts.compare(on_asyncio, on_ferroloop, {'a': 'cause'})
    assert result.knock_ons == [('b', 'a')]
    # c's worker ran no failed test before it; d failed otherwise than by a leak.
    assert [test_id for test_id, _ in result.new_failures] == ['c', 'd']


def test_on_target_counts_the_tests_in_which_a_ferroloop_loop_ran():
    on_ferroloop = results(
        ('async', 'passed', '', {'on_target': True, 'loops': ['ferroloop.loop.EventLoop']}),
        ('sync', 'passed', '', {'on_target': False, 'loops': []}),
        ('other', 'passed', '', {'on_target': False, 'loops': ['x.CustomLoop']}),
        ('skip', 'skipped', '', {'on_target': False, 'loops': ['x.CustomLoop']}))
    result = verdicts.compare({}, on_ferroloop, {})
    assert result.on_target == 1
    assert result.off_target == [('other', ['x.CustomLoop'])]


def test_unrouted_tests_are_reported_apart_not_as_run_on_ferroloop():
    asyncio_loop = {'on_target': False, 'loops': ['asyncio.unix_events._UnixSelectorEventLoop']}
    on_asyncio = results(('choice', 'passed'), ('routed', 'passed'))
    on_ferroloop = results(('choice', 'passed', '', asyncio_loop),
                           ('routed', 'passed', '', {'on_target': True, 'loops': ['f.Loop']}))
    result = verdicts.compare(on_asyncio, on_ferroloop, {}, {'choice': 'why'})
    assert result.ok
    assert result.unrouted == [('choice', 'passed', asyncio_loop['loops'])]
    # Counted neither as on ferroloop's loop nor as another loop the routing missed.
    assert result.on_target == 1 and result.off_target == []


@pytest.mark.parametrize('entry, why', [
    (('choice', 'passed', '', {'on_target': True, 'loops': ['f.Loop']}),
     'a ferroloop loop ran in it'),
    (('choice', 'failed', 'call: boom', {'on_target': False, 'loops': []}),
     'failed off ferroloop: call: boom'),
    (None, 'did not finish in the ferroloop run'),
])
def test_an_unrouted_test_that_ran_ferroloop_or_failed_breaks_the_run(entry, why):
    on_ferroloop = results(entry) if entry else {}
    result = verdicts.compare(results(('choice', 'passed')), on_ferroloop, {}, {'choice': 'x'})
    assert result.unrouted_broken == [('choice', why)]
    assert not result.ok
    assert result.new_failures == []


def test_a_flaky_test_counts_by_its_last_rerun_and_its_history_is_reported():
    on_asyncio = results(('flaky', 'failed', 'call: 1 == 2'), ('steady', 'passed'))
    on_ferroloop = results(('flaky', 'failed', 'call: 1 == 2'), ('steady', 'passed'))
    reruns = {'asyncio': {'flaky': ['passed']}, 'ferroloop': {'flaky': ['failed', 'passed']}}
    result = verdicts.compare(on_asyncio, on_ferroloop, {}, flaky={'flaky': 'why'},
                              reruns=reruns)
    assert result.ok and result.asyncio_failures == []
    assert result.flaky == [('flaky', ['failed', 'passed'], ['failed', 'failed', 'passed'])]


def test_a_flaky_test_failing_every_rerun_on_ferroloop_only_breaks_the_run():
    reruns = {'ferroloop': {'flaky': ['failed', 'failed', 'failed']}}
    result = verdicts.compare(results(('flaky', 'passed')), results(('flaky', 'failed', 'boom')),
                              {}, flaky={'flaky': 'why', 'gone': 'why'}, reruns=reruns)
    assert result.new_failures == [('flaky', 'boom')]
    assert result.flaky == [('flaky', ['passed'], ['failed'] * 4)]
    assert result.absent == ['gone']


def test_results_and_known_differences_are_read_from_their_files(tmp_path):
    run = tmp_path / 'run.jsonl'
    run.write_text(''.join(json.dumps(entry) + '\n' for entry in (
        {'id': 't1', 'outcome': 'passed', 'message': ''},
        {'id': 't2', 'outcome': 'failed', 'message': 'call: x'})))
    assert list(verdicts.read_results(run)) == ['t1', 't2']
    assert verdicts.counts(verdicts.read_results(run)) == {
        'passed': 1, 'failed': 1, 'skipped': 0, 'xfailed': 0}
    assert verdicts.read_results(tmp_path / 'never-started.jsonl') == {}
    known = tmp_path / 'known.txt'
    known.write_text('# a comment\n\ntests/a.py::t[x y]  # the cause  # in two parts\n')
    assert verdicts.read_list(known) == {'tests/a.py::t[x y]': 'the cause  # in two parts'}


@pytest.mark.parametrize('text, complaint', [
    ('tests/a.py::t\n', 'has no "# cause"'),
    ('tests/a.py::t  # one\ntests/a.py::t  # two\n', 'listed twice'),
])
def test_a_known_differences_file_names_a_cause_for_each_test_once(tmp_path, text, complaint):
    known = tmp_path / 'known.txt'
    known.write_text(text)
    with pytest.raises(ValueError, match=complaint):
        verdicts.read_list(known)
