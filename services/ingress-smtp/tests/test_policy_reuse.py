from smarthost_ingress.policy_reuse import ReuseCache, scope_domain


def test_the_cache_keeps_at_most_its_bound_dropping_the_oldest() -> None:
    cache: ReuseCache[str] = ReuseCache(max_entries=3)
    for n in range(4):
        cache.put(n, f"verdict {n}", reuse_ms=60_000, bound=n)
    assert len(cache) == 3
    assert cache.get(0) is None
    assert cache.get(3) == (3, "verdict 3")


def test_an_expired_verdict_is_not_answered() -> None:
    cache: ReuseCache[str] = ReuseCache()
    cache.put("key", "verdict", reuse_ms=0)
    assert cache.get("key") is None
    assert len(cache) == 0


def test_scope_domain() -> None:
    assert scope_domain("") == ""
    assert scope_domain("Alice@Sender.TEST") == "sender.test"
    assert scope_domain('"a@b"@x.test') == "x.test"
    assert scope_domain("bob@BÜCHER.test") == "BÜCHER.test"
    for unreusable in ("@x.test", "alice@", "alice"):
        assert scope_domain(unreusable) is None
