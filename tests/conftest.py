from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["mb.testing"]


@pytest.fixture(scope="session", autouse=True)
def entry_point_index_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """mb keeps its entry-point index in the user's cache folder (`mb.plugin_index`);
    the `mb` runs of the tests (clean_env passes XDG_CACHE_HOME on) and the tests
    themselves keep theirs in a folder of the session instead, shared by its tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
