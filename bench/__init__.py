"""ferroloop's benchmark suite: the same workloads on asyncio's loop, uvloop, rloop and ferroloop.

``python -m bench.run`` (or ``make bench``) runs it; bench/README.md says what is measured.
"""
