"""The parts of asyncio's loop API that ferroloop does not implement yet.

Each raises NotImplementedError with a clear message (never a silent no-op); the README's
feature table lists them.
"""


def _missing(name):
    raise NotImplementedError(
        f'ferroloop does not implement loop.{name}() yet (see the feature table in '
        f"ferroloop's README); use asyncio's default loop for programs that need it")


class MissingFeaturesMixin:

    async def subprocess_exec(self, protocol_factory, *args, **kwargs):
        _missing('subprocess_exec')

    async def subprocess_shell(self, protocol_factory, cmd, **kwargs):
        _missing('subprocess_shell')
