"""The content cache: an LRU of immutable bytes by digest, bounded by total size."""

from __future__ import annotations

import threading

import pytest

from forge_container.cache import ContentCache


def test_a_kept_item_comes_back() -> None:
    cache = ContentCache(max_bytes=100, max_item=50)
    cache.put("sha256:a", b"abc")
    assert cache.get("sha256:a") == b"abc"
    assert cache.get("sha256:b") is None
    assert (len(cache), cache.size) == (1, 3)


def test_the_total_stays_within_max_bytes_and_the_least_recently_used_go_first() -> None:
    cache = ContentCache(max_bytes=100, max_item=40)
    cache.put("a", b"a" * 40)
    cache.put("b", b"b" * 40)
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", b"c" * 40)
    assert cache.get("b") is None
    assert cache.get("a") == b"a" * 40 and cache.get("c") == b"c" * 40
    assert cache.size == 80 <= cache.max_bytes


def test_items_over_max_item_are_not_kept_and_evict_nothing() -> None:
    cache = ContentCache(max_bytes=100, max_item=10)
    cache.put("small", b"x" * 10)
    cache.put("big", b"y" * 11)
    assert cache.get("big") is None
    assert cache.get("small") == b"x" * 10


def test_putting_a_key_again_counts_its_bytes_once() -> None:
    cache = ContentCache(max_bytes=100, max_item=50)
    cache.put("a", b"a" * 30)
    cache.put("a", b"a" * 30)
    assert (len(cache), cache.size) == (1, 30)
    cache.clear()
    assert (len(cache), cache.size, cache.get("a")) == (0, 0, None)


def test_a_zero_sized_cache_keeps_nothing() -> None:
    cache = ContentCache(max_bytes=0)
    cache.put("a", b"a")
    assert cache.get("a") is None
    with pytest.raises(ValueError):
        ContentCache(max_bytes=-1)


def test_concurrent_puts_keep_the_bound() -> None:
    cache = ContentCache(max_bytes=1000, max_item=100)

    def fill(worker: int) -> None:
        for i in range(200):
            cache.put(f"{worker}:{i}", bytes(1 + (i % 100)))
            cache.get(f"{worker}:{i // 2}")

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 0 < cache.size <= 1000
