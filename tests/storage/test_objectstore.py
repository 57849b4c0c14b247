"""The S3 server of the dev cluster and the tests: a real SeaweedFS, spoken to as S3."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from transfer_operator.devcluster import objectstore


def test_round_trip_through_the_s3_api(s3_store: objectstore.ObjectStore, s3_bucket: str) -> None:
    filesystem = pafs.S3FileSystem(**objectstore.pyarrow_options(s3_store.credentials))
    payload = bytes(range(256)) * 4096  # 1 MiB, so the volume server really stores it
    with filesystem.open_output_stream(f"{s3_bucket}/round-trip/blob.bin") as out:
        out.write(payload)
    with filesystem.open_input_stream(f"{s3_bucket}/round-trip/blob.bin") as stream:
        assert stream.read() == payload
    listed = filesystem.get_file_info(pafs.FileSelector(f"{s3_bucket}/round-trip", recursive=True))
    assert [info.base_name for info in listed] == ["blob.bin"]
    filesystem.delete_dir(f"{s3_bucket}/round-trip")
    assert filesystem.get_file_info(f"{s3_bucket}/round-trip/blob.bin").type == pafs.FileType.NotFound


def test_uri_with_endpoint_from_env_reaches_the_store(s3_env: dict[str, str], s3_bucket: str) -> None:
    # What the trainers (and Ray Train's storage_path) do: FileSystem.from_uri with only the env set.
    filesystem, path = pafs.FileSystem.from_uri(f"s3://{s3_bucket}/from-env")
    with filesystem.open_output_stream(f"{path}/marker") as out:
        out.write(b"ok")
    assert filesystem.get_file_info(f"{path}/marker").size == 2


def test_wrong_secret_is_refused(s3_store: objectstore.ObjectStore, s3_bucket: str) -> None:
    options = objectstore.pyarrow_options(s3_store.credentials) | {"secret_key": "not-the-secret"}
    filesystem = pafs.S3FileSystem(**options)
    with (
        pytest.raises(OSError, match="(?i)access denied|signature|forbidden|403"),
        filesystem.open_output_stream(f"{s3_bucket}/refused/blob") as out,
    ):
        out.write(b"x")


def test_restart_keeps_data_endpoint_and_keys(tmp_path: Path, weed: Path) -> None:
    store = objectstore.start(tmp_path, weed)
    try:
        store.create_bucket("restart")
        filesystem = pafs.S3FileSystem(**objectstore.pyarrow_options(store.credentials))
        with filesystem.open_output_stream("restart/kept") as out:
            out.write(b"before the outage")
        assert objectstore.stop_store(tmp_path)
        assert not objectstore.stop_store(tmp_path), "a stopped store is not stopped twice"
        with pytest.raises(OSError):
            filesystem.get_file_info("restart/kept")
        again = objectstore.start(tmp_path, weed)
        assert again.credentials == store.credentials
        with filesystem.open_input_stream("restart/kept") as stream:
            assert stream.read() == b"before the outage"
    finally:
        objectstore.stop_store(tmp_path)
