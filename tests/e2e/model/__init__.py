"""The model-based test of the sync engine (tests/e2e/test_model.py): the app's Git content as
data (git.py), what the cluster holds (world.py), and the invariants (checks.py)."""
