from pathlib import Path

import pytest
from hypothesis import settings


from tcnet.plugins import Registry

TESTS = Path(__file__).parent

# Property-based tests (tests/test_cli_properties.py): a few hundred examples in the default run,
# the same ones every time (derandomized: the default suite does not pass or fail by chance), and a
# few thousand new ones on every run under -m slow (failures are replayed from .hypothesis/). Each
# example runs a command in a child process that bounds its own time: no per-example deadline.
settings.register_profile("default", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("slow", max_examples=250, deadline=None)


@pytest.fixture(scope="session")
def point_plugins():
    """The installed plugins plus the framework tests' single-file plugin (dynamics 'point')."""
    return Registry(files=[TESTS / "quadratic_plugin.py"])
