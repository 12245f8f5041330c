"""tests/bench/delay_proxy.py: bytes, order and half-close kept, delivery times scheduled, on real loopback sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from bench.delay_proxy import DelayProxy, Schedule
from bench.processes import BenchError


def test_schedule_adds_the_one_way_delay_and_never_reorders() -> None:
    schedule = Schedule(0.025)
    assert schedule.deliver_at(10.0) == pytest.approx(10.025)
    # A chunk that arrives later is never delivered earlier than the one before it.
    assert schedule.deliver_at(10.001) == pytest.approx(10.026)
    assert schedule.deliver_at(9.0) == pytest.approx(10.026)


def test_schedule_holds_the_first_bytes_for_the_emulated_connect() -> None:
    # Accepted at 100.0 with a 50 ms round trip: the connect would end at 100.05, the first bytes arrive 25 ms later.
    schedule = Schedule(0.025, hold_until=100.0 + 0.05 + 0.025)
    assert schedule.deliver_at(100.0) == pytest.approx(100.075)
    assert schedule.deliver_at(100.2) == pytest.approx(100.225)


@pytest.fixture
def echo() -> Iterator[int]:
    """A loopback server that echoes what it reads, upper-cased, then half-closes after the client's EOF."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection = listener.accept()[0]
            except OSError:
                return
            with connection:
                while True:
                    data = connection.recv(65536)
                    if not data:
                        connection.shutdown(socket.SHUT_WR)
                        break
                    connection.sendall(data.upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread; close() alone would not
    listener.close()
    thread.join(5)


def exchange(address: tuple, chunks: list) -> bytes:
    with socket.create_connection(address, timeout=10) as client:
        for chunk in chunks:
            client.sendall(chunk)
        client.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            data = client.recv(65536)
            if not data:
                return received
            received += data


@pytest.mark.parametrize("rtt", [0.0, 0.02])
def test_every_byte_arrives_in_order_on_every_address_and_eof_follows(echo: int, rtt: float) -> None:
    chunks = [b"client hello " * 100, b"x" * 200_000, b"finished"]
    with DelayProxy(["127.0.1.1", "127.0.1.2"], upstream=("127.0.0.1", echo), rtt=rtt) as proxy:
        for address in proxy.addresses:
            assert exchange((address, proxy.port), chunks) == b"".join(chunks).upper()
        assert proxy.errors() == ""
    assert proxy.pid is None


def test_an_upstream_that_refuses_closes_the_client_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        closed_port = taken.getsockname()[1]
    with DelayProxy(["127.0.1.3"], upstream=("127.0.0.1", closed_port), rtt=0.0) as proxy:
        assert exchange(("127.0.1.3", proxy.port), [b"hello"]) == b""


def test_an_address_that_cannot_be_bound_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="the delay proxy did not start"):
        DelayProxy(["192.0.2.1"], upstream=("127.0.0.1", 9), rtt=0.0).start()
