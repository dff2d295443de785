"""The crawl's mode (crawler.mode): one setting chooses every backend, Scrapy's and ours."""

from __future__ import annotations

import pytest
from conftest import project_crawler, run_crawler

from crawler.mode import BACKENDS, DISTRIBUTED, STANDALONE, backend, crawl_mode


def crawler_in(mode: str | None, **overrides: str):
    """A crawler of the project's settings in ``mode`` (None: the mode left unsaid)."""
    if mode is not None:
        overrides["CRAWL_MODE"] = mode
    return project_crawler(**overrides)


def test_a_crawl_is_standalone_unless_told():
    crawler = crawler_in(None)
    settings = crawler.settings
    assert crawl_mode(settings) == STANDALONE
    assert settings["SCHEDULER"] == "scrapy.core.scheduler.Scheduler"
    assert "crawler.distributed.throttle.StallAwareThrottle" not in settings.getdict(
        "EXTENSIONS")
    assert backend(settings, "health") == "crawler.mirrors.MirrorHealth"


def test_the_distributed_mode_sets_scrapys_parts_and_ours():
    settings = crawler_in(DISTRIBUTED).settings
    assert settings["SCHEDULER"] == "crawler.distributed.scheduler.LeasingScheduler"
    assert settings["DUPEFILTER_CLASS"] == "crawler.distributed.dupefilter.CompactDupeFilter"
    extensions = settings.getdict("EXTENSIONS")
    assert extensions["scrapy.extensions.throttle.AutoThrottle"] is None
    assert extensions["crawler.distributed.throttle.StallAwareThrottle"] == 0
    # the project's own extensions are still there
    assert "crawler.extensions.metrics.PrometheusMetrics" in extensions
    assert {part: backend(settings, part) for part in BACKENDS[DISTRIBUTED]} == \
        BACKENDS[DISTRIBUTED]


def test_every_part_has_a_backend_in_each_mode():
    assert BACKENDS[STANDALONE].keys() == BACKENDS[DISTRIBUTED].keys()
    assert all(BACKENDS[STANDALONE][p] != BACKENDS[DISTRIBUTED][p] for p in BACKENDS[STANDALONE])


def test_a_setting_the_user_gave_still_wins():
    settings = crawler_in(DISTRIBUTED, SCHEDULER="my.Scheduler").settings
    assert settings["SCHEDULER"] == "my.Scheduler"


def test_a_mode_that_is_none_is_refused_in_one_line():
    with pytest.raises(ValueError, match="CRAWL_MODE is 'sharded'"):
        crawler_in("sharded")


@pytest.mark.parametrize(("mode", "name", "other"), [
    (STANDALONE, "SCHEDULER", "crawler.distributed.scheduler.LeasingScheduler"),
    (STANDALONE, "DUPEFILTER_CLASS", "crawler.distributed.dupefilter.CompactDupeFilter"),
    (DISTRIBUTED, "SCHEDULER", "scrapy.core.scheduler.Scheduler"),
])
def test_a_part_of_the_other_mode_is_refused_in_one_line(mode, name, other):
    with pytest.raises(ValueError, match=f"^{name} is {other}, which only a") as refused:
        crawler_in(mode, **{name: other})
    assert "\n" not in str(refused.value)


def test_the_commands_refuse_a_crawl_of_mixed_modes(tmp_path):
    crawl = run_crawler("crawl", "presstv", "--store", f"sqlite:///{tmp_path}/c.db", "-s",
                        "SCHEDULER=crawler.distributed.scheduler.LeasingScheduler")
    assert crawl.returncode == 2
    assert crawl.stderr.strip().splitlines()[-1].endswith(
        "which only a distributed crawl uses (run `crawler worker`): this crawl is standalone")
    assert not (tmp_path / "c.db").exists()
