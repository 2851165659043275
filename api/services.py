"""What the routes share: one Services per app, built by create_app and read by every route through api.auth."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from api.collections import Collections
from api.config import ServerConfig
from api.documents import UploadGate, UploadLimits
from api.feedback import FeedbackLearner
from api.jobs import SyncJobs
from api.keys import KeyStore
from api.metrics import Metrics
from kb import KBError, embedder_for
from retriever import WARM_UP_QUERY


@dataclass
class Services:
    """config: what the server serves; keys: the API key store; collections: KBs and retrievers; metrics; jobs: sync
    jobs; learner: feedback into the question memory, batched; uploads: the upload slots; ready: set once warm."""

    config: ServerConfig
    keys: KeyStore
    collections: Collections
    metrics: Metrics
    jobs: SyncJobs
    learner: FeedbackLearner
    uploads: UploadGate
    ready: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def build(cls, config: ServerConfig) -> "Services":
        collections = Collections(config)
        metrics = Metrics(collections)
        return cls(
            config=config,
            keys=KeyStore(config.keys_path),
            collections=collections,
            metrics=metrics,
            jobs=SyncJobs(embedder_for, on_done=metrics.sync_done, on_committed=collections.refresh),
            learner=FeedbackLearner(collections.kb),
            uploads=UploadGate(UploadLimits(config.upload_slots, config.upload_slots_per_key)),
        )

    def warm_up(self) -> None:
        """Load each collection's model (the default for an empty one) and build its indexes; then ready is set."""
        try:
            for name in self.config.collections:
                embedder_for(self.collections.get(name).kb_dir)
            for name in self.config.collections:
                try:
                    self.collections.retriever(name, "hopfield", 5).search(WARM_UP_QUERY)  # query repair too
                except KBError:
                    pass  # an empty collection is ready as soon as it gets documents
        finally:
            self.ready.set()
