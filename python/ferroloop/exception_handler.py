"""The loop's exception handler: where errors that no caller can catch are reported."""

import traceback
from asyncio.log import logger

from . import versions


def _context_of_culprit(context):
    """The ``contextvars`` context a custom handler runs in (3.12+): that of the task, future
    or handle the report is about, so the handler sees the context variables the failing code
    saw. None when the report names none, or one without a context."""
    culprit = context.get('task')
    if culprit is None:
        # A Task is sometimes reported under 'future'; plain futures have no context.
        culprit = context.get('future')
    if culprit is None:
        culprit = context.get('handle')
    get_context = getattr(culprit, 'get_context', None) if culprit is not None else None
    runner = get_context() if get_context is not None else None
    return runner if runner is not None and hasattr(runner, 'run') else None


class ExceptionHandlerMixin:

    def _init_exception_handler(self):
        self._exception_handler = None
        # Debug mode: the handle being run (set by the core), as asyncio's _current_handle.
        self._current_handle = None

    def get_exception_handler(self):
        """The custom exception handler, or None if the default one is in use."""
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Set ``handler(loop, context)`` as the exception handler (None: the default)."""
        if handler is not None and not callable(handler):
            raise TypeError(f'A callable object or None is expected, got {handler!r}')
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log ``context`` on the ``asyncio`` logger, in asyncio's format.

        ``context['message']`` comes first, then every other key but ``exception`` (which
        becomes the logged traceback), sorted; tracebacks of creation sites are formatted.
        """
        message = context.get('message') or 'Unhandled exception in event loop'
        exception = context.get('exception')
        exc_info = (type(exception), exception, exception.__traceback__) if exception is not None else False
        current = getattr(self, '_current_handle', None)
        if ('source_traceback' not in context and current is not None
                and current._source_traceback):
            # Debug mode: reported from inside a callback; say where that callback was scheduled.
            context['handle_traceback'] = current._source_traceback
        lines = [message]
        for key in sorted(context):
            if key in ('message', 'exception'):
                continue
            value = context[key]
            if key == 'source_traceback':
                value = ('Object created at (most recent call last):\n'
                         + ''.join(traceback.format_list(value)).rstrip())
            elif key == 'handle_traceback':
                value = ('Handle created at (most recent call last):\n'
                         + ''.join(traceback.format_list(value)).rstrip())
            else:
                value = repr(value)
            lines.append(f'{key}: {value}')
        logger.error('\n'.join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Report ``context`` to the exception handler.

        A failing handler never takes the loop down: its error is logged by the default
        handler instead (``SystemExit``/``KeyboardInterrupt`` still propagate).
        """
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler', exc_info=True)
            return
        try:
            runner = _context_of_culprit(context) if versions.EXCEPTION_HANDLER_IN_CONTEXT else None
            if runner is not None:
                runner.run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    'message': 'Unhandled error in exception handler',
                    'exception': exc,
                    'context': context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error('Exception in default exception handler while handling an '
                             'unexpected error in custom exception handler', exc_info=True)
