"""modadd.sae: dictionary recovery on synthetic sparse data, exact hooks, associations against
numpy recomputation, held-out probes."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import modadd.store as store
from modadd import sae as S
from modadd.config import RunConfig, TrainConfig, stream_seed
from modadd.model import ModelConfig, build_model
from modadd.task import TaskConfig, sample_batch

TASK = TaskConfig(T=8, C=5, m_values=(1, 2))
MODEL = ModelConfig(n_layers=2, d_model=16, n_heads=2)
RUN = RunConfig(task=TASK, model=MODEL,
                train=TrainConfig(lr=1e-2, batch_size=16, n_steps=20, snapshot_every=10,
                                  probe_size=32, checkpoint_every=20, store_full_params=True))
SETTINGS = S.ProbeSettings(n_train=256, n_eval=32, random_draws=2, d_sae=16, sae_steps=30,
                           n_latents=2)


def _synthetic(n: int, d: int, atoms: int, active: int, seed: int):
    rng = np.random.default_rng(seed)
    dictionary = rng.standard_normal((d, atoms))
    dictionary /= np.linalg.norm(dictionary, axis=0)
    codes = np.zeros((n, atoms))
    for row in codes:
        row[rng.choice(atoms, active, replace=False)] = rng.uniform(0.5, 1.5, active)
    return torch.tensor(codes @ dictionary.T, dtype=torch.float32), dictionary


@pytest.mark.parametrize("kind", ["relu", "topk"])
def test_sae_recovers_the_generating_dictionary(kind):
    x, dictionary = _synthetic(8000, 24, 32, 3, seed=0)
    cfg = S.SAEConfig(kind=kind, d_sae=64, l1=0.1, k=3, lr=3e-3, steps=2500, batch_size=256)
    sae, log = S.train_sae(x, cfg, progress=False)
    decoder = sae.W_dec.detach().numpy()
    np.testing.assert_allclose(np.linalg.norm(decoder, axis=0), 1.0, atol=1e-5)
    best = np.abs(dictionary.T @ decoder).max(axis=1)       # per true atom
    assert np.mean(best > 0.9) >= 0.8, np.sort(best)
    quality = S.sae_quality(sae, x)
    assert quality["explained_variance"] > 0.9
    assert log.explained_variance.iloc[-1] > log.explained_variance.iloc[0]
    if kind == "topk":
        assert quality["l0"] == pytest.approx(3.0)


def test_quality_matches_direct_computation():
    x, _ = _synthetic(500, 8, 10, 2, seed=1)
    sae = S.SparseAutoencoder(8, S.SAEConfig(d_sae=12, seed=3)).eval()
    with torch.no_grad():
        z = sae.encode(x)
        x_hat = sae.decode(z)
    q = S.sae_quality(sae, x)
    xn, hn = x.double().numpy(), x_hat.double().numpy()
    ev = 1 - ((xn - hn) ** 2).sum() / ((xn - xn.mean(0)) ** 2).sum()
    assert q["explained_variance"] == pytest.approx(ev, rel=1e-4)
    assert q["l0"] == pytest.approx(float((z != 0).sum(1).float().mean()))
    assert q["dead_fraction"] == pytest.approx(float((~(z != 0).any(0)).float().mean()))


def test_config_validation_names_the_field():
    for kwargs, field in (({"kind": "l2"}, "kind"), ({"d_sae": 0}, "d_sae"),
                          ({"kind": "topk", "k": 300}, "k"), ({"lr": 0.0}, "lr"), ({"l1": -1.0}, "l1")):
        with pytest.raises(ValueError, match=field):
            S.SAEConfig(**kwargs)
    with pytest.raises(ValueError, match="acts"):
        S.train_sae(torch.zeros(5), S.SAEConfig())


def _model_and_batch():
    model = build_model(MODEL, TASK, 0).eval()
    batch = sample_batch(TASK, 64, None, generator=torch.Generator().manual_seed(0))
    return model, batch


@pytest.mark.parametrize("where", ["readout", "task", "all"])
def test_identity_hook_reproduces_the_logits_exactly(where):
    model, batch = _model_and_batch()
    clean = S.logits_with_edit(model, batch, 1, None, where, chunk=20)
    with torch.no_grad():
        direct = model(batch.tokens)
    torch.testing.assert_close(clean, direct, rtol=0, atol=0)
    same = S.logits_with_edit(model, batch, 1, lambda v: v, where, chunk=20)
    torch.testing.assert_close(same, direct, rtol=0, atol=0)
    changed = S.logits_with_edit(model, batch, 1, lambda v: v * 0, where, chunk=20)
    assert not torch.equal(changed, direct)


def test_ablating_no_latent_equals_reconstruction():
    model, batch = _model_and_batch()
    acts = S.collect_activations(model, batch, 1)
    assert acts.shape == (64, MODEL.d_model)
    sae, _ = S.train_sae(acts, S.SAEConfig(d_sae=32, steps=50), progress=False)
    recon = S.logits_with_edit(model, batch, 1, lambda v: sae(v))
    none = S.logits_with_edit(model, batch, 1, lambda v: sae(v, ablate=[]))
    torch.testing.assert_close(none, recon, rtol=0, atol=0)
    with torch.no_grad():
        z = sae.encode(acts)
    alive = torch.nonzero(z.abs().sum(0) > 0).flatten()[:3].tolist()
    ablated = S.logits_with_edit(model, batch, 1, lambda v: sae(v, ablate=alive))
    assert not torch.equal(ablated, recon)


def test_collect_reads_the_right_positions():
    model, batch = _model_and_batch()
    task_acts = S.collect_activations(model, batch, 2, "task", chunk=16)
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.tokens)
    mask = S.readout_positions(batch, model.seq_len, "task")
    torch.testing.assert_close(task_acts, cache["resid"][2][mask])
    # readout + each marker + its value (a last value can sit at the readout position)
    expected = [sorted({model.seq_len - 1} | {int(p) + o for p in row if p >= 0 for o in (0, 1)})
                for row in batch.marker_positions]
    assert [torch.nonzero(r).flatten().tolist() for r in mask] == expected
    with pytest.raises(ValueError, match="where"):
        S.readout_positions(batch, model.seq_len, "middle")


def test_association_matches_numpy():
    rng = np.random.default_rng(2)
    n = 400
    m = rng.integers(1, 4, n).astype(float)
    label = rng.integers(0, 5, n).astype(float)
    pos = np.where(m >= 2, rng.integers(1, 7, n), np.nan)
    codes = np.stack([m + 0.1 * rng.standard_normal(n), rng.standard_normal(n),
                      (label == 3) * 1.0, np.zeros(n)], axis=1)
    features = pd.DataFrame({"m": m, "label": label, "pos_2": pos})
    assoc = S.association(codes, features)
    assert assoc.m[0] == pytest.approx(abs(np.corrcoef(codes[:, 0], m)[0, 1]), rel=1e-10)
    keep = np.isfinite(pos)
    assert assoc.pos_2[1] == pytest.approx(abs(np.corrcoef(codes[keep, 1], pos[keep])[0, 1]))
    # correlation ratio of an indicator of one label: sqrt(between / total)
    z = codes[:, 2]
    between = sum((label == c).sum() * (z[label == c].mean() - z.mean()) ** 2
                  for c in np.unique(label))
    assert assoc.label[2] == pytest.approx(np.sqrt(between / ((z - z.mean()) ** 2).sum()))
    assert assoc.iloc[3].eq(0).all()                     # a dead latent associates with nothing
    alive = np.array([True, True, True, False])
    assert S.select_latents(assoc, 2, ["m"], alive)[0] == 0
    assert 3 not in S.select_latents(assoc, 4, ["m", "label"], alive)


def test_example_features_follow_the_batch():
    _, batch = _model_and_batch()
    features = S.example_features(batch, 2)
    assert (features.m.to_numpy() == batch.m.numpy()).all()
    one = batch.m.numpy() == 1
    assert features.pos_2[one].isna().all() and features.pos_1.notna().all()
    assert (features.value_1.to_numpy() == batch.values[:, 0].numpy()).all()


def test_linear_probe_is_scored_on_held_out_data():
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.standard_normal((600, 5)), dtype=torch.float32)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    result = S.linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert result["test_accuracy"] > 0.9
    noise = torch.tensor(rng.integers(0, 4, 600))
    chance = S.linear_probe(x[:400], noise[:400], x[400:], noise[400:])
    assert chance["test_accuracy"] < 0.4 < 0.9 < result["train_accuracy"] + 0.05


def test_probe_table_on_a_tiny_run():
    cfg, settings = RUN, replace(SETTINGS, random_draws=3)
    table = S.probe_table(cfg, [10, 20], [1], settings)
    assert set(table.step) == {10, 20} and set(table.layer) == {1}
    random = table[(table.quantity == "accuracy:zero random") & (table.sae == "relu")]
    assert len(random) == 2 * 3 * len(TASK.m_values)          # steps x draws x m
    # the clean accuracy is the model's own accuracy on the same held-out examples
    run = store.load_or_train(cfg, trajectories=True, progress=False)
    clean = table[(table.quantity == "accuracy:clean") & (table.step == 20)]
    assert len(clean) == len(TASK.m_values)
    generator = torch.Generator().manual_seed(stream_seed(0, "measure:sae:20"))
    sample_batch(TASK, settings.n_train, None, generator=generator)
    model = run.model_at(-1)
    for m in TASK.m_values:
        batch = sample_batch(TASK, settings.n_eval, m, generator=generator)
        with torch.no_grad():
            expected = float((model(batch.tokens).argmax(-1) == batch.labels).float().mean())
        assert clean[clean.m == m].value.item() == pytest.approx(expected)
    probes = S.linear_probe_table(cfg, [20], settings)
    assert len(probes) == (MODEL.n_layers + 1) * 2
    assert probes.test_accuracy.between(0, 1).all()
    # majority rate of the m labels: equal shares of every m in the held-out set
    assert probes[probes.target == "m"].majority.eq(1 / len(TASK.m_values)).all()
    again = S.probe_table(cfg, [10, 20], [1], settings)
    np.testing.assert_array_equal(again.value.to_numpy(), table.value.to_numpy())
    assert run.config == cfg
    with pytest.raises(ValueError, match="where"):
        S.ProbeSettings(where="everywhere")
    with pytest.raises(ValueError, match="steps"):
        S.probe_table(cfg, [7], [1], replace(settings, random_draws=2))


def test_concat_batches_pads_marker_columns():
    one = sample_batch(TASK, 4, 1, generator=torch.Generator().manual_seed(0))
    two = sample_batch(TASK, 3, 2, generator=torch.Generator().manual_seed(1))
    both = S.concat_batches([one, two], 2)
    assert both.marker_positions.shape == (7, 2) and (both.marker_positions[:4, 1] == -1).all()
    torch.testing.assert_close(both.tokens[4:], two.tokens)


def test_stage_steps_and_default_layers():
    cfg = RunConfig(task=TASK, model=ModelConfig(n_layers=5, d_model=16, n_heads=2),
                    train=TrainConfig(n_steps=6000, snapshot_every=100))
    assert S.stage_steps(cfg) == [300, 1500, 6000]
    assert S.stage_steps(cfg, [0.0, 0.011, 0.012]) == [0, 100]
    assert S.default_layers(cfg) == [2, 4]
    with pytest.raises(ValueError, match="stages"):
        S.stage_steps(cfg, [1.5])


def test_latent_profile_matches_the_probe_table_selection():
    cfg, settings = RUN, SETTINGS
    table = S.probe_table(cfg, [20], [1], settings)
    profile = S.latent_profile(cfg, 20, 1, settings, top=2)
    # the codes' mean by m, recomputed independently, equals the probe table's record
    by_m = profile[(profile.feature == "m") & (profile.selection == "m / positions")
                   & (profile.sae == "relu")]
    stored = table[(table.quantity == "mean_code_by_m:m / positions") & (table.sae == "relu")
                   & (table.draw < 2)]
    merged = by_m.merge(stored, left_on=["rank", "feature_value"], right_on=["draw", "m"])
    assert (merged.layer_x == 1).all()
    assert len(merged) == 2 * len(TASK.m_values)
    np.testing.assert_allclose(merged.mean_code, merged.value, rtol=1e-6, atol=1e-9)
    # counts per position value add up to the examples that have that marker
    pos1 = profile[(profile.feature == "pos_1") & (profile["rank"] == 0)
                   & (profile.selection == "m / positions") & (profile.sae == "relu")]
    assert pos1.n.sum() == settings.n_train
    assert store.find_run(cfg, trajectories=True) is not None
