"""The mirror registry (candidates the outlets named, and the mirrors adopted), one contract
for its backends: beside a SQLite store (a standalone crawl and the CLI) and in Redis (the
workers). Each case runs two registries over one backend: a crawl and a person at the CLI,
or two workers."""

from __future__ import annotations

import pytest

from crawler.distributed.candidates import RedisMirrorRegistry
from crawler.distributed.keys import RedisKeys
from crawler.mirror_registry import MirrorRegistry, StoreMirrorRegistry, decide
from crawler.mirror_verification import ADOPTED, NEW, REJECTED
from crawler.storage import open_store

NEWS = "news"
ONE, TWO = "https://news-one.example", "https://news-two.example"


@pytest.fixture(params=["sqlite", "redis"])
def registries(request, tmp_path):
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path}/crawl.db"
        return StoreMirrorRegistry(open_store(uri)), StoreMirrorRegistry(open_store(uri))
    client = request.getfixturevalue("redis_server").client()
    return (RedisMirrorRegistry(client, RedisKeys(), "worker-1", lease=30),
            RedisMirrorRegistry(client, RedisKeys(), "worker-2", lease=30))


def test_a_candidate_is_noted_once_and_seen_by_the_other(registries):
    crawl, other = registries
    first = crawl.note(NEWS, ONE, "notice", f"{ONE}/a/1")
    again = crawl.note(NEWS, ONE, "canonical", f"{ONE}/a/2")
    assert again == first and (again.state, again.source) == (NEW, "notice")
    other.refresh()
    assert [c.base for c in other.candidates(NEWS)] == [ONE]
    assert other.candidates("elsewhere") == []


def test_what_a_person_decides_holds_for_every_reader(registries):
    crawl, person = registries
    crawl.note(NEWS, ONE, "notice", f"{ONE}/a/1")
    person.refresh()
    decide(person, NEWS, ONE, adopt=True)
    decide(person, NEWS, TWO, adopt=False)  # never named: a person may know better
    crawl.refresh()
    assert crawl.adopted(NEWS) == [ONE]
    assert crawl.get(NEWS, TWO).state == REJECTED
    assert crawl.get(NEWS, ONE).state == ADOPTED
    assert crawl.get(NEWS, ONE).evidence.startswith("by a person")


def test_the_right_to_verify_can_be_given_back(registries):
    one, other = registries
    assert one.claim(NEWS, ONE)
    one.release(NEWS, ONE)
    assert other.claim(NEWS, ONE)


def test_two_workers_never_verify_one_candidate_at_once(redis_server):
    client = redis_server.client()
    one, two = (RedisMirrorRegistry(client, RedisKeys(), name, lease=30)
                for name in ("worker-1", "worker-2"))
    assert one.claim(NEWS, ONE) and not two.claim(NEWS, ONE)
    two.release(NEWS, ONE)  # not its lease: it stays
    assert not two.claim(NEWS, ONE)
    one.release(NEWS, ONE)
    assert two.claim(NEWS, ONE)


def test_in_memory_is_for_one_process_alone():
    registry = MirrorRegistry()
    registry.note(NEWS, ONE, "notice", f"{ONE}/a/1")
    assert MirrorRegistry().candidates() == [] and len(registry.candidates()) == 1
