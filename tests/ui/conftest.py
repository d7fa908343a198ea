"""The UI tests run the real local stack, as the deploy tests do."""
from tests.deploy.conftest import make_stack, stack_home  # noqa: F401  (fixtures)
