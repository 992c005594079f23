"""Fixtures shared by the test folders: a throwaway upstream CA and a proxy confdir."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapeproxy.proxy.ca import ensure_ca
from tapeproxy.testing_ca import ThrowawayCA


@pytest.fixture(scope="session")
def throwaway_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA.create(tmp_path_factory.mktemp("upstream-ca"))


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("proxy-conf")
    ensure_ca(folder)
    return folder
