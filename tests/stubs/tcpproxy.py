"""A tiny TCP proxy on 127.0.0.1 whose link can be cut, to play a network partition between a client and a server.

    with TcpProxy("127.0.0.1", server_port) as proxy:
        client connects to 127.0.0.1:proxy.port ...
        proxy.cut()          # "blackhole": bytes stop flowing both ways, connections stay open (a partition)
        proxy.cut("reset")   # or: every connection is reset and new ones refused (a firewall's REJECT)
        proxy.heal()         # new connections flow again; the ones cut stay dead, as after a real partition
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading

BUFFER = 65536
TICK = 0.05


class TcpProxy:
    """Forwards each accepted connection to the upstream address, until cut."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._mode: str | None = None          # None: forwarding; "blackhole" or "reset": cut
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._dead: set[int] = set()           # ids of pairs that were cut: they never carry bytes again
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TICK)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, name=f"tcpproxy-{self.port}", daemon=True)
        self._thread.start()

    def cut(self, mode: str = "blackhole") -> None:
        """Stop all traffic: "blackhole" keeps the sockets open and silent; "reset" resets them."""
        if mode not in ("blackhole", "reset"):
            raise ValueError(mode)
        with self._lock:
            self._mode = mode
            pairs = list(self._pairs)
            self._dead.update(id(p) for p in pairs)
        if mode == "reset":
            for pair in pairs:
                self._drop(pair, reset=True)

    def heal(self) -> None:
        """Forward new connections again; those open during the cut are closed (they timed out)."""
        with self._lock:
            self._mode = None
            dead = [p for p in self._pairs if id(p) in self._dead]
        for pair in dead:
            self._drop(pair, reset=True)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._drop(pair, reset=True)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- inside ---------------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                mode = self._mode
            if mode == "reset":
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            pair = (client, upstream)
            with self._lock:
                self._pairs.append(pair)
                self.connections += 1
                if mode == "blackhole":
                    self._dead.add(id(pair))
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        other = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                with self._lock:
                    if pair not in self._pairs:
                        return
                    dead = id(pair) in self._dead
                if dead:  # a partition: nothing is read, nothing arrives
                    self._closed.wait(TICK)
                    continue
                ready, _, _ = select.select([client, upstream], [], [], TICK)
                for s in ready:
                    data = s.recv(BUFFER)
                    if not data:
                        return
                    with self._lock:
                        if id(pair) in self._dead:
                            break  # cut between select and now: these bytes are lost
                    other[s].sendall(data)
        except OSError:
            pass
        finally:
            self._drop(pair, reset=False)

    def _drop(self, pair: tuple[socket.socket, socket.socket], reset: bool) -> None:
        with self._lock:
            if pair not in self._pairs:
                return
            self._pairs.remove(pair)
        for s in pair:
            if reset:
                _reset(s)
            else:
                with contextlib.suppress(OSError):
                    s.close()


def _reset(s: socket.socket) -> None:
    """Close with an RST, as a firewall's REJECT would."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.close()
