"""syncer: a declarative GitOps apply engine for Kubernetes."""

__version__ = "0.1.0"
