"""CPython's own test.test_asyncio, run against an event loop factory.

The tests are those of the interpreter that runs the harness (python -m test.test_asyncio's
copy); nothing beside the repository is needed. scripts/compat_check.py is the entry point.

    classification.py  which tests judge a drop-in loop (set a) and which test asyncio itself
                       (set b), for 3.11; versions.py: what later versions change
    runner.py          one worker process per module, hangs and crashes, the results
    worker.py          runs one module: routing, guard and isolation around every test
    routing.py         makes each module's loop the loop under test
    guard.py           proves which loop each test ran on
    isolation.py       puts back the global asyncio state a test leaves changed
    report.py          the text report
    known_failures/    per Python version, the set-(a) tests allowed to fail on ferroloop
"""
