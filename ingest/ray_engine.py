"""Distributed ingest on a Ray cluster: the same KB as a local run, with the heavy work spread over nodes.

Changed files are parsed and chunked by Ray Data tasks (each file under the same per-file budget as
locally, ingest.worker), and chunks are embedded by a pool of embedding actors (Ray Data
map_batches over a callable class: one model per actor, one GPU per actor where the cluster has
GPUs). Parsed documents and vectors stream back to this process, where the one KB writer caches
vectors as they arrive and commits everything in one transaction, exactly as a local run does:
RayEngine is the second implementation of ingest.engine.Engine (LocalEngine is the first), so the
plan, the lock, the crash safety, the unchanged-file and cached-vector skipping are ingest.pipeline's.

    from ingest import IngestConfig, RayConfig, RayEngine, ingest
    with RayEngine(RayConfig(address="10.0.0.5:6379")) as engine:
        report = ingest("kb_data", ["docs/"], IngestConfig(mirror=True), engine=engine)

Ray is imported only when an engine connects, so this package imports (and runs locally) without it.
Every node needs this package and its model package installed with the same Python; files travel
to the workers as bytes, so only this machine needs to read them.

Faults: Ray Data retries a task and restarts an actor lost with its node. If the job still fails
(no node left, retries spent) the run raises RayIngestError (a KBError) before the commit, so the KB
stays at its previous version; vectors already cached are reused by the next run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import socket
from dataclasses import dataclass, replace
from functools import partial
from typing import Iterable, Iterator, Sequence

import numpy as np

from ingest.config import IngestConfig
from ingest.engine import Outcome, ParseItem
from kb import EmbedderConfig, KBError, gpu_capable, load_embedder, resolve_model_path

log = logging.getLogger("hopfield_kb.ray")

# Chunks per actor call: one Ray Data block each, so the pool balances in units this size, and the
# writer caches each as it arrives (as ingest.embed.CACHE_EVERY does locally).
BATCH_CHUNKS = 256
MIN_BLOCK = 32  # the embedder's batch size: a smaller block would not fill one forward pass


class RayIngestError(KBError):
    """The cluster could not be reached, or the distributed job failed; nothing was committed."""


@dataclass(frozen=True)
class RayConfig:
    """Where and how to run.

    address: a running cluster's head, "HOST:PORT" (ray start --head prints it) or "auto"; None: the
        cluster in RAY_ADDRESS or one started on this machine, else a fresh single-node Ray here.
    actors: embedding actors; None: one per GPU where the cluster has GPUs, else one per node with CPUs.
    cpus_per_actor: CPUs each actor reserves (and torch threads it runs); None: the smallest CPU node's
        count, so one actor fills a node. On GPU nodes an actor reserves 1 CPU and 1 GPU.
    files_per_task: files parsed per Ray task (fewer, smaller tasks balance better; more cost less overhead).
    batch_chunks: chunks per embedding call.
    connect_timeout: seconds to reach an explicit address before failing with a clear error.
    """

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float | None = None
    files_per_task: int = 8
    batch_chunks: int = BATCH_CHUNKS
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise KBError(f"RayConfig.actors must be at least 1, not {self.actors}")
        if self.cpus_per_actor is not None and not self.cpus_per_actor > 0:
            raise KBError(f"RayConfig.cpus_per_actor must be > 0, not {self.cpus_per_actor}")
        if self.files_per_task < 1 or self.batch_chunks < 1:
            raise KBError("RayConfig.files_per_task and batch_chunks must be at least 1")


@dataclass(frozen=True)
class ActorPlan:
    """What the embedding pool asks the cluster for: actors x (cpus, gpus) each; threads torch runs."""

    actors: int
    cpus: float
    gpus: float
    threads: int


def plan_actors(config: RayConfig, nodes: Sequence[dict], resources: dict) -> ActorPlan:
    """The pool for a cluster: nodes as ray.nodes() gives them, resources as ray.cluster_resources()."""
    gpus = int(resources.get("GPU", 0))
    if gpus >= 1:
        return ActorPlan(config.actors or gpus, 1.0, 1.0, max(int(config.cpus_per_actor or 1), 1))
    cpu_nodes = [n["Resources"].get("CPU", 0) for n in nodes if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    if not cpu_nodes:
        raise RayIngestError(
            "the Ray cluster has no node with CPUs to run embedding actors; add a worker node "
            "(ray start --address=HEAD:PORT --num-cpus=N)"
        )
    cpus = config.cpus_per_actor or min(cpu_nodes)
    return ActorPlan(config.actors or len(cpu_nodes), float(cpus), 0.0, max(int(cpus), 1))


def _reachable(address: str, timeout: float) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayIngestError(
            f"Ray address {address!r} is not HOST:PORT (ray start --head prints the address to use, e.g. 10.0.0.5:6379)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayIngestError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start it with "
            f"`ray start --head --port={port}` on that machine, or give the address it printed"
        ) from None


def connect_ray(address: str | None, timeout: float = 10.0) -> bool:
    """Connect this process to a Ray cluster (see RayConfig.address); True when this call connected it
    (and so should disconnect), False when it already was."""
    try:
        import ray
    except ImportError:
        raise KBError("--ray needs Ray: pip install 'hopfield-kb[ray]' (or pip install 'ray[data,serve]==2.60.0')") from None
    if ray.is_initialized():
        return False
    if address not in (None, "auto", "local"):
        _reachable(address.removeprefix("ray://"), timeout)
    # Ray workers import this package; keep their torch threads sleeping rather than spinning.
    env = {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    try:
        ray.init(
            address=address,
            logging_level=logging.WARNING,
            log_to_driver=False,
            runtime_env={"env_vars": env},
            namespace="hopfield-kb",
        )
    except Exception as exc:  # noqa: BLE001 - whatever ray.init raises, the user needs the address and the fix
        where = address or os.environ.get("RAY_ADDRESS") or "this machine"
        raise RayIngestError(
            f"cannot connect to the Ray cluster at {where} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check it with `ray status`"
        ) from None
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return True


def _failed(exc: Exception, stage: str) -> RayIngestError:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return RayIngestError(
        f"the distributed {stage} failed on the Ray cluster ({type(exc).__name__}: {first}). "
        "Nothing was committed: the KB is at its previous version (vectors already embedded "
        "are cached and reused). Check the cluster with `ray status`, then run again"
    )


def _parse_batch(batch: dict, config: IngestConfig) -> dict:
    """Ray Data task: parse and chunk each file of the batch (ingest.engine.parse_item) -> pickled outcomes."""
    from ingest.engine import parse_item

    out = []
    for payload in batch["payload"]:
        item = pickle.loads(payload)
        out.append(pickle.dumps((item.key, parse_item(item, config))))
    return {"outcome": np.array(out, dtype=object)}


class _EmbedActor:
    """Ray Data actor: one model, loaded once (on the actor's GPU where it has one); embeds (i, text) rows."""

    def __init__(self, config: EmbedderConfig) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.embedder = load_embedder(config)

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        return {"i": batch["i"], "vector": self.embedder.encode(texts)}


class RayEmbedder:
    """An embedder for ingest.embed whose work runs on the cluster's actor pool: name and dim like
    kb.Embedder; encode_stream(texts) yields (indices, vectors) parts as actors finish them (in any
    order), so the writer caches each part on arrival; encode(texts) collects them in order."""

    def __init__(self, config: EmbedderConfig, ray_config: RayConfig) -> None:
        self.config = config
        self.ray_config = ray_config
        self.name = config.model
        self.dim = int(json.loads((resolve_model_path(config.model) / "config.json").read_text())["hidden_size"])

    def plan(self) -> ActorPlan:
        import ray

        return plan_actors(self.ray_config, ray.nodes(), ray.cluster_resources())

    def encode_stream(self, texts: Sequence[str], part: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(indices into texts, float32 (n, dim) unit vectors) per part of about part texts."""
        if not texts:
            return
        import pyarrow as pa
        import ray

        plan = self.plan()
        # Blocks of at most part texts (each is cached on arrival), small enough that every actor gets one,
        # but at least one model batch: a small change loads one model, not one per node.
        part = part or self.ray_config.batch_chunks
        size = max(min(part, math.ceil(len(texts) / plan.actors)), MIN_BLOCK)
        table = pa.table({"i": np.arange(len(texts), dtype=np.int64), "text": pa.array(list(texts), pa.string())})
        # Ray Data hands whole blocks to actors, so one big block would feed one actor.
        blocks = [table.slice(s, size) for s in range(0, len(texts), size)]
        source = ray.data.from_arrow(blocks)
        actors = min(plan.actors, len(blocks))
        # An ONNX model runs on onnxruntime's CPU build: its actors use the CPU even where the plan has GPUs.
        device = "cuda" if plan.gpus and gpu_capable(self.config.model) else "cpu"
        actor_config = replace(self.config, threads=plan.threads, device=device)
        ds = source.map_batches(
            _EmbedActor,
            batch_size=None,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=plan.cpus,
            num_gpus=plan.gpus or None,
            fn_constructor_kwargs={"config": actor_config},
        )
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
                yield np.asarray(batch["i"], dtype=np.int64), np.asarray(batch["vector"], dtype=np.float32)
        except KBError:
            raise
        except Exception as exc:  # noqa: BLE001 - any cluster failure ends the run before the commit
            raise _failed(exc, "embedding") from exc

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx, vecs in self.encode_stream(texts):
            out[idx] = vecs
        return out


class RayEngine:
    """An ingest.engine.Engine: parses changed files and embeds chunks on a Ray cluster for ingest(..., engine=...).

    Use as a context manager (or call connect() and close()): it connects this process to the cluster
    and disconnects at the end; the cluster itself keeps running.
    """

    def __init__(self, config: RayConfig = RayConfig()) -> None:
        self.config = config
        self._owns_connection = False

    def connect(self) -> "RayEngine":
        self._owns_connection = connect_ray(self.config.address, self.config.connect_timeout) or self._owns_connection
        return self

    def close(self) -> None:
        if self._owns_connection:
            import ray

            ray.shutdown()
            self._owns_connection = False

    def __enter__(self) -> "RayEngine":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def embedder(self, config: EmbedderConfig) -> RayEmbedder:
        return RayEmbedder(config, self.config)

    def parse(self, items: Iterable[ParseItem], config: IngestConfig) -> Iterator[tuple[str, Outcome]]:
        """(key, Parsed or FileFailure) for each item, in any order: Ray Data tasks of files_per_task files."""
        rows = [{"payload": pickle.dumps(item)} for item in items]
        if not rows:
            return
        import ray

        per_task = self.config.files_per_task
        source = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_task))
        ds = source.map_batches(partial(_parse_batch, config=config), batch_size=per_task, batch_format="numpy", num_cpus=1)
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for payload in batch["outcome"]:
                    yield pickle.loads(payload)
        except KBError:
            raise
        except Exception as exc:  # noqa: BLE001 - any cluster failure ends the run before the writer starts
            raise _failed(exc, "parsing") from exc
