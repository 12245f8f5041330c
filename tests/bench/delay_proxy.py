"""A TCP proxy on loopback that adds network distance: a round-trip time, half of it in each direction.

The kernel of the development machines has no ``netem``, so the benchmarks that measure verify "at a
distance" put this proxy between the client and the bench's servers:

    with DelayProxy(["127.0.1.1", "127.0.1.2"], upstream=("127.0.0.1", nginx.port), rtt=0.05) as proxy:
        ...  # connect to ("127.0.1.1", proxy.port): every byte arrives 25 ms later, either way

Every listening address (any of 127.0.0.0/8, which is all loopback on Linux) forwards to the one
upstream. Besides the per-direction delay, the first bytes a client sends wait one extra round trip:
the proxy's kernel completes the TCP handshake at once, whereas across a real network the client's
``connect`` returns only after a round trip, so without it a TLS handshake would see one round trip
less than it would over the wire. Order is kept and a half-close (EOF) is delayed like data.

It runs as its own process (``python -m bench.delay_proxy``), so that its work is not counted in,
nor slowed by, the process being measured; ``DelayProxy`` starts it and stops it by process id.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path
from types import TracebackType

from .ports import free_port
from .processes import BenchError

READY = "delay_proxy ready"


class Schedule:
    """When each chunk of one direction of one connection is delivered: arrival + one-way delay, in order.

    ``hold_until`` is the earliest delivery of anything (the client's emulated connect); later chunks
    never overtake earlier ones, even if the clock or the delay would allow it.
    """

    def __init__(self, one_way: float, hold_until: float = 0.0) -> None:
        self.one_way = one_way
        self.last = hold_until

    def deliver_at(self, arrival: float) -> float:
        self.last = max(self.last, arrival + self.one_way)
        return self.last


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, schedule: Schedule) -> None:
    """Copy reader to writer, each chunk (and the final EOF) delivered when ``schedule`` says."""
    loop = asyncio.get_running_loop()
    pending: deque = deque()
    arrived = asyncio.Event()

    async def deliver() -> None:
        while True:
            while not pending:
                arrived.clear()
                await arrived.wait()
            when, data = pending.popleft()
            delay = when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(65536)
            pending.append((schedule.deliver_at(loop.time()), data or None))
            arrived.set()
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        # The other side of this direction goes too, so that its peer is not left waiting for bytes that never come.
        writer.transport.abort()
    finally:
        if not sender.done():
            sender.cancel()


async def _connection(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                      upstream: tuple[str, int], rtt: float) -> None:
    accepted = asyncio.get_running_loop().time()
    try:
        server_reader, server_writer = await asyncio.open_connection(*upstream)
    except OSError:
        client_writer.close()
        return
    # Client to server: the emulated connect (one round trip) comes before the first byte's one-way trip.
    upward = Schedule(rtt / 2, hold_until=accepted + rtt + rtt / 2 if rtt else 0.0)
    downward = Schedule(rtt / 2)
    try:
        await asyncio.gather(_pump(client_reader, server_writer, upward), _pump(server_reader, client_writer, downward))
    finally:
        for writer in (client_writer, server_writer):
            writer.close()


async def serve(listen: list[tuple[str, int]], upstream: tuple[str, int], rtt: float) -> None:
    connections: set = set()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(_connection(reader, writer, upstream, rtt))
        connections.add(task)
        task.add_done_callback(connections.discard)

    servers = [await asyncio.start_server(accept, host, port, backlog=1024) for host, port in listen]
    print(READY, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    # Connections still open when told to stop are cut, quietly: the proxy's owner is done with them.
    for task in list(connections):
        task.cancel()
    await asyncio.gather(*connections, return_exceptions=True)


def _address(text: str) -> tuple[str, int]:
    host, port = text.rpartition(":")[::2]
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("%r: write HOST:PORT, e.g. 127.0.1.1:8443" % text)
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A TCP proxy that adds a round-trip time (half each way) on loopback.")
    parser.add_argument("--listen", type=_address, action="append", required=True, help="HOST:PORT to accept on; repeat it")
    parser.add_argument("--upstream", type=_address, required=True, help="HOST:PORT every connection goes to")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="added round-trip time in milliseconds")
    options = parser.parse_args(argv)
    asyncio.run(serve(options.listen, options.upstream, options.rtt_ms / 1000))


class DelayProxy:
    """``python -m bench.delay_proxy`` as a child process, on ``addresses`` x one free port; a context manager."""

    def __init__(self, addresses: list[str], upstream: tuple[str, int], rtt: float, port: int | None = None) -> None:
        self.addresses = addresses
        self.upstream = upstream
        self.rtt = rtt
        self.port = port or free_port()
        self._popen: subprocess.Popen | None = None
        self._errors = tempfile.TemporaryFile()

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def start(self) -> None:
        argv = [sys.executable, "-m", "bench.delay_proxy", "--upstream", "%s:%d" % self.upstream, "--rtt-ms", repr(self.rtt * 1000)]
        for address in self.addresses:
            argv += ["--listen", "%s:%d" % (address, self.port)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])))
        # stderr goes to a file: a pipe nobody reads would block the proxy once full.
        self._popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._errors,
                                       env=env, start_new_session=True, text=True)
        # It prints one line once every address listens, and nothing more.
        line = self._popen.stdout.readline()
        if line.strip() != READY:
            self.stop()
            raise BenchError("the delay proxy did not start: %s\n%s" % (" ".join(argv[:8]), self.errors()[-2000:]))

    def errors(self) -> str:
        """What the proxy wrote to stderr so far."""
        self._errors.seek(0)
        return self._errors.read().decode(errors="replace").strip()

    def stop(self) -> None:
        if self._popen is None:
            return
        popen, self._popen = self._popen, None
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)
        popen.stdout.close()

    def __enter__(self) -> DelayProxy:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    main()
