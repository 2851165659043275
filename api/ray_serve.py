"""The HTTP API replicated on Ray Serve: `kb serve --ray [ADDRESS] --replicas N`.

Each replica is a Ray actor running the same FastAPI application as `kb serve` (api.create_app), built
in the replica from the server config. Replicas open the collections' KB directories from storage all
nodes share (the same path on each), read-only for questions: every replica follows commits made by
any process (a local `kb sync`, a `kb sync --ray`, another replica's upload or sync job) without a
restart, loading the new snapshot in the background (kb.KnowledgeBase(background_refresh=True)).
Writes (uploads, deletions, feedback, sync jobs) go through the KB's one writer lock, so two replicas
never commit over each other.

Ray Serve's proxy (on the head node by default) spreads requests over the replicas and routes around
a dead one while the controller starts its replacement. With max_replicas above replicas the
deployment autoscales between the two on ongoing requests per replica.

Ray is imported only when deploying; this module imports without it.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

from api.config import ServerConfig
from kb import KBError

APP_NAME = "hopfield-kb"
DEPLOYMENT = "HopfieldKBApi"


@dataclass(frozen=True)
class RayServeConfig:
    """address: the Ray cluster (as RayConfig.address in ingest: None = this machine's or a fresh one).
    replicas: replicas at start (and always, without autoscaling). max_replicas: above replicas,
    autoscale between replicas and max_replicas, aiming at target_ongoing_requests per replica.
    replica_cpus: CPUs each replica reserves (its torch threads). max_ongoing_requests: per replica,
    beyond it the proxy queues. proxy_location: HeadOnly (one address, the head's) or EveryNode
    (a proxy on each node, for a load balancer in front). host, port: where the proxy listens."""

    address: str | None = None
    replicas: int = 2
    max_replicas: int | None = None
    target_ongoing_requests: float = 4.0
    replica_cpus: float = 1.0
    max_ongoing_requests: int = 16
    proxy_location: str = "HeadOnly"
    host: str = "127.0.0.1"
    port: int = 8000
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise KBError(f"--replicas must be at least 1, not {self.replicas}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise KBError(f"--max-replicas ({self.max_replicas}) must be at least --replicas ({self.replicas})")
        if not self.replica_cpus > 0:
            raise KBError(f"--replica-cpus must be > 0, not {self.replica_cpus}")
        if self.proxy_location not in ("HeadOnly", "EveryNode"):
            raise KBError(f"proxy_location must be HeadOnly or EveryNode, not {self.proxy_location!r}")

    def autoscaling(self) -> dict | None:
        if self.max_replicas is None or self.max_replicas == self.replicas:
            return None
        return {
            "min_replicas": self.replicas,
            "initial_replicas": self.replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
        }


def _application(server: ServerConfig, conf: RayServeConfig):
    from ray import serve

    # The app is built in each replica (not pickled from here): it holds locks, threads and SQLite handles.
    @serve.ingress()
    class HopfieldKBApi:
        def __init__(self, config: ServerConfig) -> None:
            self._config = config

        def __serve_build_asgi_app__(self):
            from api.app import create_app

            return create_app(self._config)

    autoscaling = conf.autoscaling()
    options: dict[str, Any] = {  # serve.deployment's keyword arguments
        "name": DEPLOYMENT,
        "max_ongoing_requests": conf.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": conf.replica_cpus},
        "health_check_period_s": 2,
        "health_check_timeout_s": 30,
        "graceful_shutdown_timeout_s": 10,
    }
    if autoscaling is None:
        options["num_replicas"] = conf.replicas
    else:
        options["autoscaling_config"] = autoscaling
    return serve.deployment(**options)(HopfieldKBApi).bind(server)


def deploy(server: ServerConfig, conf: RayServeConfig) -> str:
    """Start Serve on the cluster (this process must be connected: ingest.ray_engine.connect) and run the
    API application; returns its URL once every replica is up."""
    from ray import serve

    try:
        serve.start(http_options={"host": conf.host, "port": conf.port}, proxy_location=conf.proxy_location)
        serve.run(_application(server, conf), name=APP_NAME, route_prefix="/", blocking=False)
    except KBError:
        raise
    except Exception as exc:  # noqa: BLE001 - a deployment that cannot start is one clear line
        first = (str(exc).strip().splitlines() or [""])[0][:400]
        raise KBError(
            f"the API could not be deployed on Ray Serve ({type(exc).__name__}: {first}); the replica "
            "logs are under the cluster's session logs (ray logs)"
        ) from None
    return f"http://{conf.host}:{conf.port}"


def undeploy() -> None:
    """Delete the application and stop Serve on the cluster (its proxies and controller)."""
    from ray import serve

    try:
        serve.delete(APP_NAME)
    finally:
        serve.shutdown()


def serve_until_stopped(server: ServerConfig, conf: RayServeConfig, say=print) -> None:
    """`kb serve --ray`: connect, deploy, wait for SIGTERM or Ctrl+C, then undeploy and disconnect.
    The cluster itself keeps running."""
    import ray

    from ingest import connect_ray

    owns = connect_ray(conf.address, conf.connect_timeout)  # its errors are KBErrors: one line for the CLI
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        url = deploy(server, conf)
        scale = f"{conf.replicas}" if conf.autoscaling() is None else f"{conf.replicas}-{conf.max_replicas} (autoscaling)"
        say(
            f"Serving {', '.join(server.collections)} on {url} with {scale} Ray Serve replicas "
            "(API docs: /docs; Ctrl+C stops)"
        )
        stop.wait()
        say("stopping: deleting the deployment")
    finally:
        try:
            undeploy()
        except Exception as exc:  # noqa: BLE001 - stopping goes on
            logging.getLogger("hopfield_kb.api").warning("could not delete the Serve deployment: %s", exc)
        if owns:
            ray.shutdown()
