"""TLS over a ferroloop transport, with asyncio's own TLS protocol (``asyncio.sslproto``).

The raw connection is a native transport; ``SSLProtocol`` sits on it as its protocol and hands
the application the TLS transport asyncio users know. The application's protocol cannot tell
the difference from asyncio's loop.
"""

import contextvars
from asyncio import sslproto, streams

from . import _ferroloop, versions
from .transports import SocketTransport


class SSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, whose calls into the application's protocol all run in one
    context, the connection's (``_context``), as those of the native transports do.

    What the connection reads reaches it in that context already; these are the paths that
    start from the application's own calls to the TLS transport, in whatever context they
    are made: ``close()`` reads what is left (``get_buffer``, ``data_received``...),
    ``write()`` may pause the protocol, ``resume_reading()`` schedules the next reads.
    """

    _context = None

    def _start_shutdown(self):
        _ferroloop._run_in_context(self._context, super()._start_shutdown)

    def _control_app_writing(self):
        _ferroloop._run_in_context(self._context, super()._control_app_writing)

    def _resume_reading(self):
        _ferroloop._run_in_context(self._context, super()._resume_reading)

    def _do_shutdown(self):
        # What the peer sent before it saw our close_notify is dropped, as uvloop does:
        # unwrap() would fail on it ('application data after close notify') and the
        # connection end with that error instead of cleanly.
        if not self._eof_received and self._sslobj is not None:
            self._discard_incoming()
        super()._do_shutdown()

    def _discard_incoming(self):
        try:
            while self._sslobj.read(_DISCARD_CHUNK):
                pass
        except sslproto.SSLAgainErrors:
            return  # no close_notify yet
        except sslproto.ssl.SSLZeroReturnError:
            pass
        # The peer's close_notify came behind its data: it is done too.
        self._call_eof_received()


_DISCARD_CHUNK = 256 * 1024


def make_ssl_transport(loop, rawsock, protocol, sslcontext, waiter, server_side, server_hostname,
                       extra, server, ssl_handshake_timeout, ssl_shutdown_timeout, users_sock,
                       context=None):
    tls = SSLProtocol(loop, protocol, sslcontext, waiter, server_side, server_hostname,
                      ssl_handshake_timeout=ssl_handshake_timeout,
                      ssl_shutdown_timeout=ssl_shutdown_timeout)
    tls._context = context if context is not None else contextvars.copy_context()
    SocketTransport(loop, rawsock, tls, extra=extra, server=server, users_sock=users_sock,
                    context=tls._context)
    return tls._app_transport


def _take_stream_buffer(protocol, tls):
    """What a server's StreamReader read ahead of start_tls() (a client's TLS hello sent with
    the last plaintext line, say) goes to the TLS protocol: it has already left the socket,
    and the handshake would wait for it forever."""
    if not isinstance(protocol, streams.StreamReaderProtocol):
        return
    reader = protocol._stream_reader
    if reader is not None and reader._buffer:
        tls._incoming.write(reader._buffer)
        reader._buffer.clear()


class TlsMixin:

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False,
                        server_hostname=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Upgrade an existing connection to TLS; return the new (TLS) transport."""
        import ssl
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(f'sslcontext is expected to be an instance of ssl.SSLContext, '
                            f'got {sslcontext!r}')
        if not getattr(transport, '_start_tls_compatible', False):
            raise TypeError(f'transport {transport!r} is not supported by start_tls()')
        waiter = self.create_future()
        tls = SSLProtocol(self, protocol, sslcontext, waiter, server_side, server_hostname,
                          ssl_handshake_timeout=ssl_handshake_timeout,
                          ssl_shutdown_timeout=ssl_shutdown_timeout,
                          call_connection_made=False)
        # The new protocol's callbacks run in the context start_tls() is called in (as on
        # asyncio's loop, whose resumed reader is added there), not the plaintext one's.
        tls._context = contextvars.copy_context()
        # Reading stops until the TLS protocol is in place, so no plaintext byte reaches it
        # before connection_made.
        transport.pause_reading()
        if server_side and versions.START_TLS_TAKES_STREAM_BUFFER:
            _take_stream_buffer(protocol, tls)
        transport.set_protocol(tls)
        core = getattr(transport, '_core', None)
        if core is not None:
            core._set_context(tls._context)
        made = self.call_soon(tls.connection_made, transport, context=tls._context)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            # The exception holds this frame through its traceback, and the waiter holds the
            # exception: a cycle that would keep the transport alive.
            waiter = None
            raise
        return tls._app_transport
