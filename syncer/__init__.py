"""syncer: a declarative GitOps apply engine for Kubernetes."""

__version__ = "0.1.0"

SCHEMA_VERSION = "v1"
"""The `schemaVersion` of every JSON/YAML document syncer writes (diff, sync, status, version,
errors, the daemon's JSON log lines): docs/schema/v1.json describes them. A new field keeps
the version; a field that changes meaning or goes away makes v2."""
