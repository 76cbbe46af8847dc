from bucketcore import Limit, Limiter


def test_a_fresh_bucket_grants_its_burst_and_then_denies() -> None:
    limiter = Limiter(clock=lambda: 0)
    limit = Limit(3, 60.0)
    assert [limiter.try_acquire("alice", limit) for _ in range(4)] == [True, True, True, False]
