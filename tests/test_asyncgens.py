"""Asynchronous generator hooks: shutdown_asyncgens and finalization on the loop."""

import asyncio
import gc
import sys

import pytest


def make_agen(log, name):
    async def agen():
        try:
            yield 1
            yield 2
        finally:
            log.append((name, 'finalized', asyncio.get_running_loop()))
    return agen()


def test_shutdown_asyncgens_closes_open_generators(loop):
    log = []
    gens = [make_agen(log, i) for i in range(3)]

    async def start_them():
        for gen in gens:
            assert await gen.__anext__() == 1

    loop.run_until_complete(start_them())
    assert log == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert sorted(entry[0] for entry in log) == [0, 1, 2]
    assert all(entry[2] is loop for entry in log)


def test_generators_never_started_or_exhausted_need_no_closing(loop):
    log = []
    exhausted = make_agen(log, 'exhausted')

    async def drain():
        return [x async for x in exhausted]

    assert loop.run_until_complete(drain()) == [1, 2]
    assert log == [('exhausted', 'finalized', loop)]
    make_agen(log, 'never-started')
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert log == [('exhausted', 'finalized', loop)]


def test_abandoned_generator_is_finalized_on_the_loop(loop):
    log = []

    async def abandon():
        gen = make_agen(log, 'abandoned')
        await gen.__anext__()
        del gen
        gc.collect()
        # The finalizer schedules aclose() on the loop; let it run.
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(abandon())
    assert log == [('abandoned', 'finalized', loop)]


def test_error_while_closing_goes_to_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def bad_agen():
        try:
            yield 1
        finally:
            raise ValueError('cannot close')

    gen = bad_agen()

    async def start():
        # Inside the loop, so the loop's firstiter hook sees the generator.
        await gen.__anext__()

    loop.run_until_complete(start())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(contexts) == 1
    assert contexts[0]['message'].startswith(
        'an error occurred during closing of asynchronous generator')
    assert isinstance(contexts[0]['exception'], ValueError)
    assert contexts[0]['asyncgen'] is gen


def test_generator_started_after_shutdown_warns(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())
    log = []
    gen = make_agen(log, 'late')

    async def start():
        await gen.__anext__()

    with pytest.warns(ResourceWarning, match='was scheduled after loop.shutdown_asyncgens'):
        loop.run_until_complete(start())
    loop.run_until_complete(gen.aclose())


def test_hooks_are_installed_only_while_running(loop):
    before = sys.get_asyncgen_hooks()
    seen = []
    loop.call_soon(lambda: seen.append(sys.get_asyncgen_hooks()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert sys.get_asyncgen_hooks() == before
    assert seen[0].firstiter is not None and seen[0].finalizer is not None
    assert seen[0] != before


def test_asyncio_run_closes_generators_left_open(loop_factory):
    log = []

    async def main():
        gen = make_agen(log, 'left-open')
        await gen.__anext__()
        main.gen = gen  # keep it alive until the runner shuts generators down

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    assert [entry[:2] for entry in log] == [('left-open', 'finalized')]
