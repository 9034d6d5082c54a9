"""Listening sockets: one SO_REUSEPORT socket per worker slot, owned by the supervisor.

A single shared socket lets one worker accept a burst of connections while another
idles (libuv accepts until the backlog is empty). With one socket per worker index the
kernel spreads connections across workers by hash. The supervisor keeps every socket
open for its whole life, so connections that reach a dead worker's socket wait in its
backlog for the replacement instead of being reset.
"""

from __future__ import annotations

import contextlib
import socket


class Listeners:
    """The environment's listening sockets, index i for worker i."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets
        self.port = int(sockets[0].getsockname()[1]) if sockets else 0
        #: The admin listener's one socket, shared by every worker (`worker.admin`).
        self.admin: socket.socket | None = None

    @property
    def descriptors(self) -> tuple[int, ...]:
        """Every listening descriptor open here (a child that serves none closes them)."""
        extra = [self.admin] if self.admin is not None else []
        return tuple(s.fileno() for s in [*self.sockets, *extra])

    @classmethod
    def open(cls, host: str, port: int, count: int, backlog: int = 2048) -> Listeners:
        if count == 0:
            return cls([])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        reuseport = hasattr(socket, "SO_REUSEPORT") and count > 1
        if reuseport:
            # SO_REUSEPORT would let us join another server already on this port (same
            # user): bind once without it first, so a busy port fails as it should.
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
                port = probe.getsockname()[1]
        sockets: list[socket.socket] = []
        try:
            for _ in range(count if reuseport else 1):
                sock = socket.socket(family, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuseport:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((host, port))
                port = sock.getsockname()[1]
                sock.listen(backlog)
                sock.set_inheritable(True)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        return cls(sockets)

    def for_worker(self, index: int) -> socket.socket:
        return self.sockets[index % len(self.sockets)]

    def keep_only(self, index: int) -> socket.socket:
        """In a worker: close the other workers' sockets, so that when it drains the
        kernel stops routing connections to sockets nobody accepts on any more."""
        mine = self.for_worker(index)
        for sock in self.sockets:
            if sock is not mine:
                sock.close()
        return mine

    def shrink(self, count: int) -> None:
        """Keep the first `count` sockets (the init phase chose fewer workers): a socket
        without a worker would hold its connections forever."""
        for sock in self.sockets[max(1, count) :]:
            sock.close()
        del self.sockets[max(1, count) :]

    def close(self) -> None:
        for sock in [*self.sockets, *([self.admin] if self.admin is not None else [])]:
            with contextlib.suppress(OSError):
                sock.close()
