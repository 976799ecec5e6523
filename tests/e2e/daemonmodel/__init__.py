"""The daemon-level model-based test's parts (tests/e2e/test_daemon_model.py): a control plane
of its own with an audit log (`lab`), tenants' Git repositories and what each revision renders
(`repos`), `syncer run --shard` replicas as processes (`replicas`), what the test sees of the
cluster over time (`observe`), and the invariants checked on it (`invariants`)."""
