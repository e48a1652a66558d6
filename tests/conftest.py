from pathlib import Path

import pytest
from hypothesis import settings


from tcnet.plugins import Registry

TESTS = Path(__file__).parent

# Property-based tests (tests/test_cli_properties.py): a few hundred examples in the default run,
# a few thousand under -m slow. Each example runs a command in a child process and bounds its own
# time, so hypothesis's per-example deadline is off; failures are replayed from .hypothesis/.
settings.register_profile("default", max_examples=25, deadline=None)
settings.register_profile("slow", max_examples=250, deadline=None)


@pytest.fixture(scope="session")
def point_plugins():
    """The installed plugins plus the framework tests' single-file plugin (dynamics 'point')."""
    return Registry(files=[TESTS / "quadratic_plugin.py"])
