from pathlib import Path

import pytest

from bruno_pipelines import all_images, checks, lint, source
from bruno_pipelines.offline import (
    EngineRequiredError,
    OfflineConnection,
    Query,
    capture,
    offline_client,
)


def test_capture_reads_the_selection_chain_root_first() -> None:
    client = offline_client()
    ctr = client.container().from_("alpine").with_workdir("/w").with_exec(["ls", "-l"])

    query = capture(ctr)

    assert query.fields() == ["container", "from", "withWorkdir", "withExec"]
    assert query.find("withExec")[0].args == {"args": ["ls", "-l"]}
    assert str(query) == (
        'container.from(address: "alpine").withWorkdir(path: "/w").withExec(args: ["ls", "-l"])'
    )


def test_object_arguments_are_captured_as_the_query_that_builds_them() -> None:
    client = offline_client()
    ctr = client.container().with_mounted_cache("/cache", client.cache_volume("k"))

    (mount,) = capture(ctr).find("withMountedCache")

    cache = mount.args["cache"]
    assert isinstance(cache, Query)
    assert cache.find("cacheVolume")[0].args == {"key": "k"}


def test_capturing_a_lazy_object_does_not_change_it() -> None:
    client = offline_client()
    base = client.container().from_("alpine")
    child = base.with_exec(["true"])

    assert capture(base).fields() == ["container", "from"]
    assert capture(child).fields() == ["container", "from", "withExec"]


def test_building_every_pipeline_sends_nothing_to_an_engine(tmp_path: Path) -> None:
    connection = OfflineConnection()
    client = offline_client(connection)
    src = source(client, tmp_path)

    for obj in [lint(client, src), checks.test(client, src), *all_images(src).values()]:
        capture(obj)

    assert connection.attempts == 0


async def test_awaiting_an_offline_query_is_refused() -> None:
    connection = OfflineConnection()
    client = offline_client(connection)

    with pytest.raises(EngineRequiredError):
        await client.container().from_("alpine").sync()
    assert connection.attempts == 1
