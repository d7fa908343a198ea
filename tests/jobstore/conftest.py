"""The store tests reuse the API tests' real redis-server and settings (test_postgres
drives the API on PostgreSQL too)."""
from tests.api.conftest import redis_url, settings  # noqa: F401  (pytest fixtures)
