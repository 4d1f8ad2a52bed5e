"""Stores on S3 from Python: a store ingested by the CLI into a moto S3 server, registered by
its s3:// URL, answers as the same store on disk does; a missing one names the URL."""

from __future__ import annotations

import os
import subprocess

import datafusion
import pytest

import atlas_sql
from test_atlas_sql import cli, py_rows, store  # noqa: F401 (store is a fixture)

try:
    import moto.server as moto_server
except ImportError:
    if os.environ.get("CI") == "true":
        raise  # CI runs every test
    pytest.skip("moto is not installed (pip install 'moto[server]')", allow_module_level=True)


@pytest.fixture(scope="module")
def s3(store):
    """A moto server with bucket `atlas` holding the ERSST store at s3://atlas/ersst.atlas."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="atlas")
        inputs = store.parent / "in"
        subprocess.run(
            [cli(), "ingest", "s3://atlas/ersst.atlas", str(inputs), "--create", "-q"], check=True
        )
        yield "s3://atlas/ersst.atlas"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_an_s3_store_answers_as_the_same_store_on_disk(store, s3):
    ctx = datafusion.SessionContext()
    atlas_sql.register(ctx, store, schema="disk")
    atlas_sql.register(ctx, s3, schema="cloud")
    for sql in [
        "SELECT dataset, count(*), count(sst), round(avg(sst), 4) FROM {}.sst "
        "GROUP BY dataset ORDER BY dataset",
        "SELECT count(*) FROM {}.sst WHERE sst > 30 AND lat_index < 40",
    ]:
        assert py_rows(ctx, sql.format("cloud")) == py_rows(ctx, sql.format("disk"))
    ctx.register_table("sst_s3", atlas_sql.table(s3, "sst"))
    assert py_rows(ctx, "SELECT count(*) FROM sst_s3") == [[str(3 * 89 * 180)]]
    atlas_sql.register_factory(ctx)
    ctx.sql(f"CREATE EXTERNAL TABLE t STORED AS ATLAS LOCATION '{s3}' OPTIONS ('variable' 'sst')").collect()
    assert py_rows(ctx, "SELECT count(sst) FROM t") == py_rows(ctx, "SELECT count(sst) FROM disk.sst")
    ctx.register_udtf(atlas_sql.atlas_scan())
    scanned = py_rows(ctx, f"SELECT count(*) FROM atlas_scan('{s3}', 'sst') WHERE dataset LIKE '%01'")
    assert scanned == [[str(89 * 180)]]
    assert atlas_sql.verify(s3)["damaged"] == []


def test_a_missing_s3_store_is_an_error_naming_the_url(s3):
    with pytest.raises(Exception, match="s3://atlas/nope"):
        atlas_sql.register(datafusion.SessionContext(), "s3://atlas/nope", schema="x")
