"""Free TCP ports on 127.0.0.1 for the servers the tests and benchmarks start."""

from __future__ import annotations

import itertools
import random
import socket
from pathlib import Path

_SPAN = 10_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _candidates() -> itertools.cycle[int]:
    # Below the kernel's ephemeral range, from a random start, each port once per round.
    high = _ephemeral_low()
    low = max(1024, high - _SPAN)
    start = random.randrange(low, high)
    return itertools.cycle([*range(start, high), *range(low, start)])


_ports = _candidates()


def free_port() -> int:
    """A port no socket is bound to now, below the ephemeral range.

    Binding to port 0 picks from the ephemeral range, where the port can be taken, before
    the server binds it, as the local port of some client's outgoing connection: under
    wrk's thousands of connections a benchmark's server once failed with EADDRINUSE."""
    for _ in range(_SPAN):
        port = next(_ports)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port below the ephemeral range")
