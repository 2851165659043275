"""Exceptions raised by the knowledge base. Each message names the fix."""


class KBError(Exception):
    """Base class for every error a user of hopfield-kb can act on."""


class ManifestError(KBError):
    """The KB on disk cannot be read by this version, or was built with another model."""


class KBLockedError(KBError):
    """Another process holds the KB's write lock (a sync or ingest is running)."""


class EmptyKBError(KBError):
    """A search or check was asked of a KB that holds no chunks."""
