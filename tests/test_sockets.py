from __future__ import annotations

import socket

import pytest

from worker.sockets import Listeners


def test_one_socket_per_worker_on_one_port() -> None:
    listeners = Listeners.open("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in listeners.sockets}
        assert len(listeners.sockets) == 3 and ports == {listeners.port}
        assert listeners.for_worker(4) is listeners.sockets[1]
    finally:
        listeners.close()


def test_a_busy_port_is_refused_even_with_reuseport() -> None:
    taken = Listeners.open("127.0.0.1", 0, 2)
    try:
        with pytest.raises(OSError):
            Listeners.open("127.0.0.1", taken.port, 2)
    finally:
        taken.close()


def test_keep_only_closes_the_other_workers_sockets() -> None:
    listeners = Listeners.open("127.0.0.1", 0, 2)
    mine = listeners.keep_only(1)
    try:
        assert mine.fileno() != -1 and listeners.sockets[0].fileno() == -1
        with socket.create_connection(("127.0.0.1", listeners.port), timeout=5):
            pass  # still reachable through the socket kept
    finally:
        listeners.close()
