"""Nothing lost, by construction: seeded fault schedules (tests/fault_schedule.py) crawled
standalone and by two workers, each run checked against the conservation law.

Each seed serves 60 real corpus pages from three nginx mirrors that answer each article as
the seed picks; the distributed seeds here also kill a worker, freeze one and restart Redis.
A failing seed prints what it broke and the command that replays it;
``benchmarks/fault_schedules.py`` runs many more.
"""

from __future__ import annotations

import pytest
from fault_schedule import (
    DISTRIBUTED,
    FREEZE,
    KILL,
    REDIS_RESTART,
    STANDALONE,
    article_paths,
    make_schedule,
    run,
)
from nginx_outlet import CORPUS, NginxUnavailable, find_nginx, has_corpus
from redis_server import RedisServerUnavailable, find_redis_server

#: (mode, seed): standalone seeds with a mirror down for a while among them; distributed
#: seeds that kill a worker, freeze one and restart Redis
SEEDS = [(STANDALONE, 2), (STANDALONE, 5), (STANDALONE, 7), (DISTRIBUTED, 15),
         (DISTRIBUTED, 18)]


@pytest.fixture
def servers():
    try:
        find_nginx()
        find_redis_server()
    except (NginxUnavailable, RedisServerUnavailable) as exc:
        pytest.skip(str(exc))
    if not has_corpus(CORPUS):
        pytest.skip(f"corpus not found at {CORPUS}")


def test_the_distributed_seeds_shake_the_crawl_every_way():
    for mode, seed in SEEDS:
        if mode == DISTRIBUTED:
            assert make_schedule(seed, article_paths()).disruptions == {
                KILL, FREEZE, REDIS_RESTART}


@pytest.mark.parametrize(("mode", "seed"), SEEDS, ids=[f"{m}-{s}" for m, s in SEEDS])
def test_a_fault_schedule_loses_nothing(servers, tmp_path, mode, seed):
    found = run(mode, seed, tmp_path / f"{mode}-{seed}")
    print(found.report())
    assert found.ok, found.report()
