"""Name resolution: ``getaddrinfo``/``getnameinfo``.

Numeric hosts and ports need no lookup, so they are answered on the loop's thread; names go
to the C resolver on ferroloop's native threads (src/dns/), and what only the socket module
converts faithfully (non-ASCII names, odd argument types) to the default executor, as asyncio
does for everything.
"""

import socket
import time
from asyncio.log import logger

from ._ferroloop import _numeric_addrinfo

_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
_NUMERIC_NAMES = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV


def _numeric_getaddrinfo(host, port, family, type, proto, flags):
    """The answer for a numeric host and port, or None if a real lookup is needed."""
    # An IP literal and a plain port, the common case, are answered without the C library.
    result = _numeric_addrinfo(host, port, family, type, proto, flags)
    if result is not None:
        return result
    try:
        return socket.getaddrinfo(host, port, family, type, proto, flags | _NUMERIC)
    except socket.gaierror:
        # Not numeric (or numeric but unresolvable for this family): let the full lookup,
        # in the executor, give the authoritative answer or error.
        return None
    except (TypeError, ValueError, OverflowError, UnicodeError):
        # Bad arguments fail the same way in the full lookup; let it raise them there.
        return None


class DnsMixin:

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """``socket.getaddrinfo`` without blocking the loop."""
        if not self.get_debug():
            result = _numeric_getaddrinfo(host, port, family, type, proto, flags)
            if result is not None:
                return result
            # The C resolver on ferroloop's own threads; None back means "convert it as the
            # socket module does", which only the socket module can.
            future = self.create_future()
            if self._getaddrinfo(future, host, port, family, type, proto, flags):
                result = await future
                if result is not None:
                    return result
            return await self.run_in_executor(None, socket.getaddrinfo, host, port, family, type, proto, flags)
        return await self.run_in_executor(None, _getaddrinfo_logged, self.slow_callback_duration,
                                          host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        """``socket.getnameinfo`` without blocking the loop."""
        # Anything but an int goes to the executor, which raises what socket.getnameinfo does.
        if isinstance(flags, int) and flags & _NUMERIC_NAMES == _NUMERIC_NAMES:
            return socket.getnameinfo(sockaddr, flags)
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)


def _getaddrinfo_logged(slow, host, port, family, type, proto, flags):
    """Debug mode: the lookup with its arguments and duration logged, as asyncio does (at INFO
    level if it took ``slow`` seconds or more: the loop's slow_callback_duration)."""
    parts = [f'{host}:{port!r}']
    if family:
        parts.append(f'family={family!r}')
    if type:
        parts.append(f'type={type!r}')
    if proto:
        parts.append(f'proto={proto!r}')
    if flags:
        parts.append(f'flags={flags!r}')
    what = ', '.join(parts)
    logger.debug('Get address info %s', what)
    started = time.monotonic()
    result = socket.getaddrinfo(host, port, family, type, proto, flags)
    elapsed = time.monotonic() - started
    message = f'Getting address info {what} took {elapsed * 1e3:.3f}ms: {result!r}'
    if elapsed >= slow:
        logger.info(message)
    else:
        logger.debug(message)
    return result
