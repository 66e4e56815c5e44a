"""Free ports are picked outside the kernel's ephemeral range, so they stay free."""

from __future__ import annotations

import socket

import pytest

from stockflow_kit import net
from stockflow_kit.net import _ephemeral_range, free_port, free_port_block


def test_a_block_is_free_consecutive_and_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral_range()
    for _ in range(50):
        base = free_port_block(5)
        assert not low <= base <= high
        assert not low <= base + 4 <= high
        for port in range(base, base + 5):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))


def test_a_taken_port_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy, busy - 2, busy + 7])  # taken, then a block that overlaps it, then free
        monkeypatch.setattr(net._ports, "randrange", lambda *_: next(picks))
        assert free_port_block(3) == busy + 7
