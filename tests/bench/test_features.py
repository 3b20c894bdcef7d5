import numpy as np

from radadapt.bench import features as F
from radadapt.bench import targets as T
from radadapt.manifest import Store


def test_extraction_matches_the_encoder_and_the_cache_is_reused_and_keyed(bench_store, tiny_rad_dino, tmp_path):
    from radadapt.models import registry

    root, _ = bench_store
    store = Store(root)
    co = T.select_cohorts(store, {"test": None})["test"]
    index = co.index()
    enc = registry.load_encoder(tiny_rad_dino)
    cache = F.FeatureCache(tmp_path, enc.fingerprint)
    tags, stats = F.extract(enc, store, index, cache, batch_size=8, shard_rows=16)
    assert stats == {"reused": 0, "computed": len(co)}
    assert len(list(cache.dir.glob("part-*.safetensors"))) >= 2  # written in shards as it goes
    got = cache.load(tags, F.POOLED)
    direct = enc.features(enc.preprocess([store.image_at(index, i) for i in range(3)]))
    np.testing.assert_allclose(got["cls"][:3], direct["cls"].numpy(), rtol=2e-3, atol=2e-3)  # float16 storage
    assert got["layers"].shape == (len(co), 4 * enc.embed_dim)
    # a second run (or a resumed one) reuses everything
    tags2, stats2 = F.extract(enc, store, index, F.FeatureCache(tmp_path, enc.fingerprint), batch_size=8)
    assert stats2 == {"reused": len(co), "computed": 0} and tags2 == tags
    # another model never sees these features
    other = F.FeatureCache(tmp_path, "0" * 64)
    assert other.missing(tags) == list(range(len(tags)))
    # an image stored elsewhere (re-ingested) gets a new tag
    moved = co.index()
    moved.offsets[0] += 1
    assert F.image_tags(store, moved)[0] != tags[0] and F.image_tags(store, moved)[1:] == tags[1:]


def test_interrupted_extraction_resumes_with_only_the_missing_images(bench_store, tiny_rad_dino, tmp_path):
    from radadapt.models import registry

    root, _ = bench_store
    store = Store(root)
    index = T.select_cohorts(store, {"val": None})["val"].index()
    enc = registry.load_encoder(tiny_rad_dino)
    calls = {"n": 0}
    real = enc.features

    def dying(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(x)

    enc.features = dying
    cache = F.FeatureCache(tmp_path, enc.fingerprint)
    try:
        F.extract(enc, store, index, cache, batch_size=4, shard_rows=4)
    except KeyboardInterrupt:
        pass
    enc.features = real
    _, stats = F.extract(enc, store, index, F.FeatureCache(tmp_path, enc.fingerprint), batch_size=4)
    assert stats["reused"] == 8 and stats["computed"] == len(index) - 8


def test_float16_overflow_falls_back_to_float32(tmp_path):
    cache = F.FeatureCache(tmp_path, "f" * 64)
    cache.write(["a", "b"], {"cls": np.array([[1.0, 2.0], [1e6, 3.0]], np.float32)})
    got = F.FeatureCache(tmp_path, "f" * 64).load(["b", "a"], ["cls"])["cls"]
    np.testing.assert_array_equal(got, [[1e6, 3.0], [1.0, 2.0]])


def test_changed_weights_or_preprocessing_miss_the_cache(bench_store, tiny_rad_dino, tmp_path):
    """The cache key is the model fingerprint: editing one weight or the preprocessing makes every image a miss."""
    import json
    import shutil

    from safetensors.numpy import load_file, save_file

    from radadapt.models import registry

    root, _ = bench_store
    store = Store(root)
    index = T.select_cohorts(store, {"val": None})["val"].index()
    enc = registry.load_encoder(tiny_rad_dino)
    F.extract(enc, store, index, F.FeatureCache(tmp_path / "c", enc.fingerprint), batch_size=16)
    edited = tmp_path / "edited"
    shutil.copytree(tiny_rad_dino, edited)
    weights = load_file(edited / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1e-3
    save_file(weights, edited / "model.safetensors")
    enc2 = registry.load_encoder(edited)
    assert enc2.fingerprint != enc.fingerprint
    _, stats = F.extract(enc2, store, index, F.FeatureCache(tmp_path / "c", enc2.fingerprint), batch_size=16)
    assert stats == {"reused": 0, "computed": len(index)}
    pre = tmp_path / "pre"
    shutil.copytree(tiny_rad_dino, pre)
    cfg = json.loads((pre / "preprocessor_config.json").read_text())
    cfg["image_mean"] = [0.5, 0.5, 0.5]
    (pre / "preprocessor_config.json").write_text(json.dumps(cfg))
    assert registry.load_encoder(pre).fingerprint not in (enc.fingerprint, enc2.fingerprint)
