"""A real local Ray cluster for tests and benchmarks: a head node and worker nodes, each a `ray start --block`
process of its own (its own session, temp dir and ports), started, waited for and stopped with everything
they started.

Stopping kills each node's process tree by pid (psutil) and then its process group: never `ray stop`,
which would kill every Ray process of this user on the machine, including clusters it did not start.
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")

# A dead node is noticed in ~3 s instead of ~30 s (the fault tests kill one): GCS health checks.
FAST_FAILURE_ENV = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_failure_threshold": "4",
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_timeout_ms": "1000",
}


class ClusterError(RuntimeError):
    """Ray could not start here (the caller skips, naming this reason)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    proc: subprocess.Popen
    log: Path
    cpus: float
    pids: set[int] = field(default_factory=set)  # every process seen under proc (raylet, workers...)


class LocalCluster:
    """head_cpus on the head; one worker node per entry of worker_cpus. Use as a context manager."""

    def __init__(
        self,
        head_cpus: float = 1,
        worker_cpus: tuple[float, ...] = (1,),
        object_store_mb: int = 256,
        start_timeout: float = 90.0,
    ) -> None:
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.object_store_mb = object_store_mb
        self.start_timeout = start_timeout
        # Short: a Unix socket path under the temp dir must stay under 107 bytes.
        self.tmp = Path(tempfile.mkdtemp(prefix="hkbray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[Node] = []

    def _start_node(self, name: str, cpus: float, head: bool) -> Node:
        log = self.tmp / f"{name}.log"
        args = [
            str(RAY),
            "start",
            "--block",
            f"--num-cpus={cpus:g}",
            "--num-gpus=0",
            "--disable-usage-stats",
            f"--object-store-memory={self.object_store_mb * 2**20}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            "--node-ip-address=127.0.0.1",
        ]
        if head:
            args += [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--temp-dir={self.tmp}",
                f"--ray-client-server-port={free_port()}",
            ]
        else:
            args += [f"--address={self.address}"]
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", RAY_USAGE_STATS_ENABLED="0", **FAST_FAILURE_ENV)
        env.pop("RAY_ADDRESS", None)
        with open(log, "w") as fh:
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        node = Node(proc, log, cpus)
        self.nodes.append(node)
        return node

    def start(self) -> "LocalCluster":
        if not RAY.exists():
            raise ClusterError(f"no ray command next to {sys.executable}: pip install 'ray[data,serve]==2.60.0'")
        try:
            # Workers join once the head answers: started together on a busy 2-core machine, a worker's
            # `ray start` can give up on its own startup deadline.
            self._start_node("head", self.head_cpus, head=True)
            self._wait_nodes(1)
            # One at a time: two nodes joining at once on one machine can pick the same object-store socket.
            for i, cpus in enumerate(self.worker_cpus):
                self._start_node(f"worker{i}", cpus, head=False)
                self._wait_nodes(2 + i)
        except BaseException:
            self.stop()
            raise
        return self

    def _alive(self) -> list[dict]:
        import ray

        return [n for n in ray.nodes() if n["Alive"]]

    def _wait_nodes(self, n: int) -> None:
        """Connect this process as a driver (once) and poll until n nodes are alive."""
        import ray

        deadline = time.monotonic() + self.start_timeout
        while not ray.is_initialized():
            dead = [nd for nd in self.nodes if nd.proc.poll() is not None]
            if dead:
                raise ClusterError(f"`ray start` exited with {dead[0].proc.returncode}: {dead[0].log.read_text()[-1500:]}")
            try:
                ray.init(
                    address=self.address,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                    namespace="hopfield-kb",
                    runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
                )
            except (ConnectionError, RuntimeError, Exception) as exc:  # noqa: BLE001 - the head may not listen yet
                if time.monotonic() > deadline:
                    raise ClusterError(f"could not connect to the head at {self.address}: {exc}") from None
                time.sleep(0.5)
        while len(self._alive()) < n:
            dead = [nd for nd in self.nodes if nd.proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = dead[0].log.read_text()[-1500:] if dead else "timed out"
                raise ClusterError(f"{n} Ray nodes did not come up within {self.start_timeout:.0f} s: {why}")
            time.sleep(0.2)
        self._remember_pids()

    def _remember_pids(self) -> None:
        import psutil

        for node in self.nodes:
            try:
                node.pids |= {p.pid for p in psutil.Process(node.proc.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                pass

    def raylet_pid(self, node_index: int) -> int:
        """Pid of node_index's raylet (0 = head, 1 = first worker node)."""
        import psutil

        for child in psutil.Process(self.nodes[node_index].proc.pid).children(recursive=True):
            try:
                if "raylet" in child.name() or any("raylet" in part for part in child.cmdline()[:1]):
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        raise ClusterError(f"no raylet under node {node_index}")

    def processes(self, title_prefix: str) -> dict[int, list[int]]:
        """{node index: pids} of the processes whose title starts with title_prefix (Ray names an actor's
        process ray::CLASS, e.g. ray::ServeReplica:hopfield-kb:HopfieldKBApi)."""
        import psutil

        out: dict[int, list[int]] = {}
        for i, node in enumerate(self.nodes):
            try:
                children = psutil.Process(node.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for child in children:
                try:
                    title = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                if title.startswith(title_prefix):
                    out.setdefault(i, []).append(child.pid)
        return out

    def wait_alive(self, n: int, timeout: float = 60.0) -> None:
        """Poll until exactly n nodes are alive (after a kill: the cluster noticed)."""
        deadline = time.monotonic() + timeout
        while len(self._alive()) != n:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {n} alive Ray nodes (have {len(self._alive())})")
            time.sleep(0.2)

    def stop(self) -> None:
        """Disconnect, then kill every node's process tree and process group; remove the temp dir."""
        import psutil

        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        except Exception:  # noqa: BLE001 - stopping must go on whatever the driver's state
            pass
        # SIGKILL at once: a test cluster keeps nothing worth a graceful stop (which takes ~15 s). Ray
        # workers run in sessions of their own, so each is killed by the pid found under its node.
        self._remember_pids_quietly()
        for node in self.nodes:
            for pid in node.pids | {node.proc.pid}:
                try:
                    psutil.Process(pid).kill()
                except psutil.NoSuchProcess:
                    pass
            try:
                os.killpg(node.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                node.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _remember_pids_quietly(self) -> None:
        try:
            self._remember_pids()
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
