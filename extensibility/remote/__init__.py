"""The remote environment cache (scale-out): one build per deployment, restored on every node.

Optional: it needs the `[remote]` extra (azure-storage-blob, zstandard) and
EXTENSIBILITY_REMOTE_CACHE. Nothing here is imported on a warm start: a node that has the
environment never asks the store. docs/scale-out.md has the design and its guarantees.
"""

from __future__ import annotations

from collections.abc import Mapping

from extensibility.log import Log
from extensibility.redact import redact_url
from extensibility.remote.backend import RemoteError
from extensibility.remote.cache import RemoteCache
from extensibility.settings import Settings

VARIABLE = "EXTENSIBILITY_REMOTE_CACHE"


def open_remote(settings: Settings, env: Mapping[str, str], log: Log) -> RemoteCache | None:
    """The configured remote cache (None: none configured, or it cannot be used, which is said
    once: the start goes on with the local cache). Settings checked the URL's shape."""
    url = settings.remote_cache
    if not url:
        return None
    from extensibility.remote.azure import AzureBackend

    try:
        import zstandard  # noqa: F401  (the archive format)

        backend = AzureBackend(url, env)
    except ImportError:
        log.warning("remote", f"{VARIABLE} is set but azure-storage-blob or zstandard is not "
                    "installed (pip install 'inference-extensibility[remote]'); building here")
        return None
    except RemoteError as exc:
        log.warning("remote", f"{redact_url(url)} cannot be used ({exc}); going on without "
                    "the remote cache")
        return None
    return RemoteCache(backend, settings.remote_wait, settings.install_timeout)
