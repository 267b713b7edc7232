"""Fréchet distance and feature statistics against scipy / closed forms / torch-fidelity's own code; fid@ref-npz
end to end in the (offline) digits feature space, with reference caching and batch-size independence."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from bench.metrics import generative as G
from bench.registry import BenchError


def reference_frechet(mu1, s1, mu2, s2) -> float:
    """Written out independently: ||mu1-mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrtm(S1 S2))."""
    covmean = linalg.sqrtm(s1.dot(s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def random_gaussian(rng, dim):
    a = rng.normal(size=(dim, dim))
    return rng.normal(size=dim), a @ a.T / dim + 0.1 * np.eye(dim)


def test_frechet_of_diagonal_gaussians_by_hand():
    # commuting covariances: Tr sqrtm(S1 S2) = sum sqrt(s1_i s2_i)
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    hand = (1 + 0 + 4) + (1 + 4 - 2 * 2) + (4 + 1 - 2 * 2) + (9 + 1 - 2 * 3)
    assert hand == 11
    assert G.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(11.0, abs=1e-12)


@pytest.mark.parametrize("dim", [2, 16, 64])
def test_frechet_matches_scipy_sqrtm_and_torch_fidelity(dim):
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    rng = np.random.default_rng(dim)
    (mu1, s1), (mu2, s2) = random_gaussian(rng, dim), random_gaussian(rng, dim)
    ours = G.frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(reference_frechet(mu1, s1, mu2, s2), rel=1e-6)
    # torch-fidelity computes the trace term from eigenvalues instead of sqrtm: an independent route
    tf = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)
    assert ours == pytest.approx(tf["frechet_inception_distance"], rel=1e-6)
    assert G.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_feature_stats_do_not_depend_on_batch_size_or_sharding():
    rng = np.random.default_rng(0)
    features = rng.normal(loc=3.0, scale=2.0, size=(257, 32)).astype(np.float32)
    expected_mu = features.astype(np.float64).mean(0)
    expected_sigma = np.cov(features.astype(np.float64), rowvar=False)
    results = []
    for batch in (1, 7, 64, 257):
        stats = G.FeatureStats(32)
        for start in range(0, len(features), batch):
            stats.update(features[start:start + batch])
        results.append(stats)
    shard_a, shard_b = G.FeatureStats(32).update(features[::2]), G.FeatureStats(32).update(features[1::2])
    results.append(shard_a.merge(shard_b))  # two "processes" each holding every other sample
    for stats in results:
        assert stats.n == 257
        np.testing.assert_allclose(stats.mu, expected_mu, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stats.sigma, expected_sigma, rtol=1e-10, atol=1e-12)
    with pytest.raises(BenchError, match="shape"):
        G.FeatureStats(32).update(features[:, :16])


@pytest.fixture(scope="module")
def digits_sets():
    from bench.data.smoke import digits

    test_images, _ = digits("test")
    train_images, _ = digits("train")
    return test_images, train_images[:600]  # 600 real images keep the file fast on 2 shared cores


def test_fid_ref_npz_in_digits_features_against_a_hand_built_reference(digits_sets, tmp_path):
    import torch

    from bench.metrics import offline_fd

    test_images, train_images = digits_sets
    # reference statistics computed here, independently: features -> np.mean / np.cov -> an ADM-style npz
    with torch.no_grad():
        feats = offline_fd.load_classifier().embed(torch.from_numpy(train_images))[0].double().numpy()
    ref = tmp_path / "VIRTUAL_digits_labeled.npz"
    np.savez(ref, mu=feats.mean(0), sigma=np.cov(feats, rowvar=False), arr_0=train_images[:10])
    with torch.no_grad():
        sample_feats = offline_fd.load_classifier().embed(torch.from_numpy(test_images))[0].double().numpy()
    expected = reference_frechet(sample_feats.mean(0), np.cov(sample_feats, rowvar=False), feats.mean(0),
                                 np.cov(feats, rowvar=False))
    small = G.fid_ref_npz(test_images, ref, feature_extractor=offline_fd.EXTRACTOR_NAME, batch_size=7)
    large = G.fid_ref_npz(test_images, ref, feature_extractor=offline_fd.EXTRACTOR_NAME, batch_size=300)
    assert small.value == pytest.approx(expected, rel=1e-6)
    assert small.value == pytest.approx(large.value, rel=1e-9)
    assert small.name == "fd@ref:bench-digits-cnn"  # not the Inception dialect: never labelled FID
    assert small.n == len(test_images) and small.protocol["reference_kind"] == "npz mu/sigma"


def test_reference_images_are_cached_by_content(digits_sets):
    from bench.metrics import offline_fd

    test_images, train_images = digits_sets
    first = G.fid_ref_npz(test_images, train_images[:400], feature_extractor=offline_fd.EXTRACTOR_NAME)
    again = G.fid_ref_npz(test_images, train_images[:400], feature_extractor=offline_fd.EXTRACTOR_NAME)
    other = G.fid_ref_npz(test_images, train_images[:401], feature_extractor=offline_fd.EXTRACTOR_NAME)
    assert first.extra["reference_cache"] == "miss" and again.extra["reference_cache"] == "hit"
    assert again.value == first.value
    assert other.extra["reference_cache"] == "miss"  # different content, different fingerprint
    assert other.protocol["reference_fingerprint"] != first.protocol["reference_fingerprint"]


def test_reference_npz_errors(digits_sets, tmp_path):
    from bench.metrics import offline_fd

    test_images, _ = digits_sets
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(64))
    with pytest.raises(BenchError, match="expected 'mu' and 'sigma'"):
        G.fid_ref_npz(test_images, bad, feature_extractor=offline_fd.EXTRACTOR_NAME)
    wrong_dim = tmp_path / "inception.npz"
    np.savez(wrong_dim, mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(BenchError, match="2048-d statistics"):
        G.fid_ref_npz(test_images, wrong_dim, feature_extractor=offline_fd.EXTRACTOR_NAME)
    with pytest.raises(BenchError, match="uint8"):
        G.fid_ref_npz(test_images.astype(np.float32), wrong_dim, feature_extractor=offline_fd.EXTRACTOR_NAME)


def test_two_set_metrics_through_torch_fidelity_with_any_extractor(digits_sets, tmp_path):
    from PIL import Image

    from bench.metrics import offline_fd

    test_images, train_images = digits_sets
    fd = G.fid_two_sets(test_images, train_images, feature_extractor=offline_fd.EXTRACTOR_NAME)
    assert fd.name == "fd@torch-fidelity:bench-digits-cnn"
    assert fd.value == pytest.approx(offline_fd.fd_digits(test_images, train_images).value, rel=1e-12)
    kd = G.kid_two_sets(test_images, train_images, feature_extractor=offline_fd.EXTRACTOR_NAME, kid_subsets=10)
    assert kd.name == "kd@torch-fidelity:bench-digits-cnn" and kd.protocol["kid_subset_size"] == 300
    # a folder of PNGs is read as RGB by torch-fidelity: the digits extractor refuses it in one line
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, img in enumerate(test_images[:5]):
        Image.fromarray(img[0]).convert("RGB").save(folder / f"{i:04d}.png")
    with pytest.raises(BenchError, match="uint8 \\[N,1,16,16\\]"):  # PNGs load as RGB: the digits CNN says so
        G.fid_two_sets(folder, train_images, feature_extractor=offline_fd.EXTRACTOR_NAME)


def test_inception_dialects_need_the_weights_asset(digits_sets):
    test_images, _ = digits_sets
    rgb = np.repeat(test_images[:4], 3, axis=1)
    for call in (lambda: G.fid_two_sets(rgb, rgb), lambda: G.isc(rgb), lambda: G.fid_ref_npz(rgb, "x.npz")):
        with pytest.raises(BenchError, match="weights-inception-2015-12-05-6726825d.pth.*sha256 6726825d0af5"):
            call()


def test_folder_inputs_load_sorted_rgb_and_fingerprint_by_content(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    for name, img in zip(("b.png", "a.png", "c.png"), images):
        Image.fromarray(img).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    dataset = G.as_dataset(tmp_path)
    assert len(dataset) == 3
    assert np.array_equal(dataset[0].numpy(), images[1].transpose(2, 0, 1))  # a.png first
    before = G.fingerprint_images(tmp_path)
    Image.fromarray(images[0][::-1].copy()).save(tmp_path / "a.png")
    assert G.fingerprint_images(tmp_path) != before
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="no images"):
        G.as_dataset(tmp_path / "empty")
    with pytest.raises(BenchError, match="does not exist"):
        G.as_dataset(tmp_path / "nowhere")
