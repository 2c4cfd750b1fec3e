"""asyncio's own locks on the loop: they rely on the loop running their callbacks and the
woken tasks' steps in asyncio's order."""

import asyncio

from conftest import run


def test_a_lock_waiter_cancelled_after_being_woken_passes_the_lock_on(loop):
    # The lock's release() wakes the first waiter; that waiter is cancelled before it runs.
    # It must wake the next one, or the lock stays free with a task waiting on it forever
    # (the deadlock CPython fixed in Lock.acquire's cancellation path).
    async def main():
        lock = asyncio.Lock()
        await lock.acquire()
        first = asyncio.create_task(lock.acquire())
        second = asyncio.create_task(lock.acquire())
        third = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0)      # all three wait
        lock.release()              # wakes the first...
        first.cancel()              # ...which is cancelled before it runs
        assert await asyncio.wait_for(second, 5) is True
        assert first.cancelled() and lock.locked() and not third.done()
        lock.release()
        assert await asyncio.wait_for(third, 5) is True
        lock.release()
        assert not lock.locked()
        async with lock:            # still free for a newcomer
            pass

    run(loop, main())


def test_cancelling_a_waiter_and_releasing_at_once_gives_the_lock_to_one_task(loop):
    # bpo-32734: the first waiter cancelled and the lock released in one callback: the next
    # waiter takes the lock, and only it (not two at once), the last one still waits.
    async def main():
        lock = asyncio.Lock()
        holders = []

        async def take(name):
            await lock.acquire()
            holders.append(name)

        await lock.acquire()
        tasks = [asyncio.create_task(take(name)) for name in ('first', 'second', 'third')]
        await asyncio.sleep(0)      # all three wait

        def cancel_and_release():
            tasks[0].cancel()
            lock.release()

        asyncio.get_running_loop().call_soon(cancel_and_release)
        await asyncio.wait([tasks[0]], timeout=5)
        await asyncio.sleep(0)
        assert tasks[0].cancelled() and holders == ['second'] and not tasks[2].done()
        lock.release()
        await asyncio.wait_for(tasks[2], 5)
        assert holders == ['second', 'third']
        lock.release()
        assert not lock.locked()

    run(loop, main())
