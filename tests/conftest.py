"""Fixtures shared by every test folder: a real S3 server (SeaweedFS, built from Go modules)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from transfer_operator.devcluster import objectstore

BUCKET = "transfer-tests"


@pytest.fixture(scope="session")
def weed() -> Path:
    """The cached SeaweedFS binary (hack/test.sh builds it before pytest starts)."""
    return objectstore.weed_binary(build=True)


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory, weed: Path) -> Iterator[objectstore.ObjectStore]:
    store = objectstore.start(tmp_path_factory.mktemp("objectstore"), weed)
    store.create_bucket(BUCKET)
    yield store
    objectstore.stop_store(store.state_dir)


@pytest.fixture(scope="session")
def s3_bucket(s3_store: objectstore.ObjectStore) -> str:
    """A bucket that exists in the store."""
    return BUCKET


@pytest.fixture
def s3_env(s3_store: objectstore.ObjectStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The store's endpoint and keys in this test's environment, as a pod of a job would have them."""
    env = s3_store.credentials.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
