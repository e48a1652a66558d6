from pathlib import Path

import pytest

from tcnet.plugins import Registry

TESTS = Path(__file__).parent


@pytest.fixture(scope="session")
def point_plugins():
    """The installed plugins plus the framework tests' single-file plugin (dynamics 'point')."""
    return Registry(files=[TESTS / "quadratic_plugin.py"])
