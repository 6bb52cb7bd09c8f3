"""Test-suite settings shared by every directory."""
from hypothesis import settings

# Property-based tests explore the same examples on every run (no flaky CI, no example
# database written into the tree); each test may still ask for more examples.
settings.register_profile("tinygraph", derandomize=True, database=None, deadline=None)
settings.load_profile("tinygraph")
