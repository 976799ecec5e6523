"""The cluster adapter: the only package that talks to the Kubernetes API server.

One concern per module, as kopf's `_cogs/clients/`:
- `config`: kubeconfig (or the pod's service account) to a `Connection`;
- `credentials`: tokens, token files, exec plugins, each cached as kubectl caches it;
- `transport`: pooled HTTP with the connection's TLS and credentials, rate limiting, encoding;
- `client`: `Kube`, requests with retries and the verbs (apply is server-side apply only);
- `errors`: a failed response's Status to syncer's error types;
- `discovery`: which kinds are served, refreshed when that changes;
- `watch`: the one reflector (list, watch with bookmarks, list again on 410, backoff);
- `lease`: the one Lease protocol (app locks, leader election, shard membership).

Nothing here imports `syncer.apply` or `syncer.daemon`.
"""

from syncer.kube.client import APPLY_PATCH, MERGE_PATCH, Kube
from syncer.kube.config import (
    ClientOptions,
    Connection,
    KubeconfigContext,
    current_context,
    default_namespace,
    load_connection,
)
from syncer.kube.discovery import parse_server_version
from syncer.kube.resource import Resource
from syncer.kube.transport import RequestStats, encode

__all__ = [
    "APPLY_PATCH",
    "MERGE_PATCH",
    "ClientOptions",
    "Connection",
    "Kube",
    "KubeconfigContext",
    "RequestStats",
    "Resource",
    "current_context",
    "default_namespace",
    "encode",
    "load_connection",
    "parse_server_version",
]
