"""`BucketMap`: a mapping like a dict, whose `evolve` leaves the map it came from alone."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.evaluation.bucket_map import BUCKET_SIZE, MIN_BUCKETS, BucketMap

keys = st.text(min_size=1, max_size=6)
changes = st.dictionaries(keys, st.integers(), max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, st.integers(), max_size=200), st.lists(changes, max_size=12))
def test_it_reads_as_a_dict_and_evolving_it_changes_nothing_seen(
    start: dict[str, int], steps: list[dict[str, int]]
) -> None:
    maps = [BucketMap.of(start)]
    models = [dict(start)]
    for step in steps:
        maps.append(maps[-1].evolve(step))
        models.append({**models[-1], **step})
    for bucket_map, model in zip(maps, models, strict=True):
        assert dict(bucket_map.items()) == model
        assert len(bucket_map) == len(model)
        assert sorted(bucket_map) == sorted(model)
        assert bucket_map == model
        for key in list(model)[:10]:
            assert key in bucket_map
            assert bucket_map[key] == model[key]
            assert bucket_map.get(key) == model[key]
        assert "not a key, too long" not in bucket_map
        assert bucket_map.get("not a key, too long") is None
        assert bucket_map.get("not a key, too long", -1) == -1
        with pytest.raises(KeyError):
            bucket_map["not a key, too long"]


def test_it_spreads_itself_again_as_it_grows() -> None:
    grown: BucketMap[str, int] = BucketMap.of({})
    for start in range(0, 20_000, 500):
        grown = grown.evolve({f"lum-{i}": i for i in range(start, start + 500)})
    assert len(grown) == 20_000
    assert len(grown._buckets) > MIN_BUCKETS
    assert max(len(bucket) for bucket in grown._buckets) < 16 * BUCKET_SIZE
    assert grown["lum-12345"] == 12345


def test_of_a_bucket_map_is_itself() -> None:
    one = BucketMap.of({"a": 1})
    assert BucketMap.of(one) is one
    assert one.evolve({}) is one
