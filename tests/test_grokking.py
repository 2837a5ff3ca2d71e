"""Algorithmic tasks on the training engine: fingerprints at the answer position, early stopping,
init perturbations, measurement that does not touch training, and the grokking presets."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from modadd import fingerprint as fp
from modadd.algorithmic import AlgorithmicTask
from modadd.config import RunConfig, TrainConfig, stream_seed
from modadd.grokking import (grok_step, grokking_preset, grokking_study, power_batch_size)
from modadd.model import ModelConfig, build_model
from modadd.taskdata import AlgorithmicData, record_fingerprint
from modadd.train import perturb_parameters, train


def _tiny(**train_changes) -> RunConfig:
    task = AlgorithmicTask(p=11, op="+", train_fraction=0.5, split_seed=3)
    train_cfg = TrainConfig(lr=3e-3, weight_decay=1.0, beta2=0.98, batch_size=16, n_steps=30,
                            snapshot_every=5, checkpoint_every=10, probe_size=20,
                            record_every=3)
    return RunConfig(task=task, model=ModelConfig(n_layers=1, d_model=16, n_heads=2,
                                                  attention_only=False, activation="relu"),
                     train=replace(train_cfg, **train_changes), seed=4)


class _Oracle(torch.nn.Module):
    """Puts all its mass on (a + b) mod p, read from the tokens ``a, op, b, =``."""

    def __init__(self, p: int):
        super().__init__()
        self.p = p

    def run_with_cache(self, tokens, keep_cache=True):
        answer = (tokens[:, 0] + tokens[:, 2]) % self.p
        logits = torch.full((len(tokens), self.p), -30.0)
        logits[torch.arange(len(tokens)), answer] = 30.0
        return logits, {"resid": [], "attn": []}


def test_fingerprint_reads_the_answer_at_the_equals_position():
    cfg = _tiny()
    data = AlgorithmicData(cfg)
    out = record_fingerprint(_Oracle(11), data, cfg)
    # a perfect predictor of the answer: every log-prob is ~0 and the accuracy 1.  The fork's
    # target (the token after the answer, or the last input token '=') would give ~-60.
    assert np.all(np.abs(out["heldout"]) < 1e-12) and out["heldout_accuracy"] == 1.0
    probe = data.probes["heldout"]
    assert (probe.tokens[:, cfg.task.answer_position] == cfg.task.p + 1).all()
    fork_target = probe.tokens[:, -1] % 11          # what reading the last token's id scores
    wrong = fp.answer_logprobs(_Oracle(11).run_with_cache(probe.tokens)[0], fork_target)
    assert np.all(wrong < -50)


def test_fingerprint_equals_an_independent_recomputation():
    cfg = _tiny(fingerprint_train=True, fingerprint_directions=3)
    data = AlgorithmicData(cfg)
    model = build_model(cfg.model, cfg.task, 0).eval()
    out = record_fingerprint(model, data, cfg)
    for split in ("heldout", "train"):
        probe = data.probes[split]
        tokens, labels = data.splits[split]
        np.testing.assert_array_equal(tokens[probe.index], probe.tokens)
        with torch.no_grad():
            logits = model(probe.tokens).double()
        logp = (logits - torch.logsumexp(logits, -1, keepdim=True))[torch.arange(len(labels[
            probe.index])), labels[probe.index]].numpy()
        np.testing.assert_allclose(out[split], np.quantile(logp, fp.DEFAULT_QUANTILES),
                                   atol=1e-9)
    with torch.no_grad():
        hidden = model.run_with_cache(data.probes["heldout"].tokens)[1]["resid"][-1][:, 3]
    proj = hidden.double().numpy() @ data.directions.T
    expected = np.quantile(proj, fp.DEFAULT_QUANTILES, axis=0).T.ravel()
    np.testing.assert_allclose(out["sliced"], expected, atol=1e-9)
    assert out["sliced"].shape == (3 * 19,)


def test_probe_sets_are_shared_across_seeds_and_drawn_from_their_split():
    a, b = AlgorithmicData(_tiny()), AlgorithmicData(replace(_tiny(), seed=9))
    for split in ("heldout", "train"):
        np.testing.assert_array_equal(a.probes[split].index, b.probes[split].index)
        assert len(np.unique(a.probes[split].index)) == 20
    c = AlgorithmicData(_tiny(fingerprint_seed=1))
    assert not np.array_equal(a.probes["heldout"].index, c.probes["heldout"].index)


def test_minibatches_are_distinct_training_pairs_and_full_batch_is_the_split():
    cfg = _tiny()
    data = AlgorithmicData(cfg)
    g = torch.Generator().manual_seed(0)
    batch = data.batch(16, g)
    train_rows = {tuple(r) for r in data.splits["train"][0].tolist()}
    rows = [tuple(r) for r in batch.tokens.tolist()]
    assert len(set(rows)) == 16 and set(rows) <= train_rows
    full = data.batch(10_000, g)
    assert torch.equal(full.tokens, data.splits["train"][0])


def test_algorithmic_run_is_reproducible_and_measurement_does_not_change_training(tmp_path):
    a = train(_tiny(), tmp_path / "a")
    b = train(_tiny(), tmp_path / "b")
    quiet = train(_tiny(record_every=0), tmp_path / "c")
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])
    np.testing.assert_array_equal(a["train_loss"], quiet["train_loss"])
    fa, fb = a["arrays"]["fingerprints.npz"], b["arrays"]["fingerprints.npz"]
    np.testing.assert_array_equal(fa["heldout"], fb["heldout"])
    np.testing.assert_array_equal(fa["steps"], np.arange(0, 31, 3))
    train_index, heldout_index = _tiny().task.split()
    np.testing.assert_array_equal(fa["split_train"], train_index)
    np.testing.assert_array_equal(fa["split_heldout"], heldout_index)
    sa = torch.load(tmp_path / "a" / "final_model.pt")
    sq = torch.load(tmp_path / "c" / "final_model.pt")
    assert all(torch.equal(sa[k], sq[k]) for k in sa)
    rows = pd.DataFrame(a["metrics"])
    assert set(rows.metric) == {"loss", "accuracy", "train_loss", "train_accuracy", "weight_sq"}
    last = rows[(rows.metric == "weight_sq") & (rows.step == 30)].value.iloc[0]
    assert last == pytest.approx(sum(float((v.double() ** 2).sum()) for v in sa.values()))


def _tiny_power() -> RunConfig:
    """``_tiny`` on openai/grok's recipe (the ``power`` preset's options): shuffled epochs of 4
    batches (60 training pairs, the last batch 12), post-LN, sinusoidal, no biases, the loss over
    the answer and the end token."""
    cfg = _tiny(sampling="epochs")
    return replace(cfg, task=replace(cfg.task, start_token=True, readout_all_tokens=True,
                                     split_method="numpy-shuffle", eos_target=True),
                   model=replace(cfg.model, norm_position="post", positions="sinusoidal",
                                 biases="none"))


@pytest.mark.parametrize("make", [_tiny, _tiny_power], ids=["default", "power recipe"])
def test_resumed_algorithmic_run_is_bit_identical(tmp_path, make):
    full = train(make(), tmp_path / "full")
    train(make(), tmp_path / "part", stop_after=10)      # mid-epoch with shuffled epochs
    resumed = train(make(), tmp_path / "part")
    np.testing.assert_array_equal(full["train_loss"], resumed["train_loss"])
    np.testing.assert_array_equal(full["arrays"]["fingerprints.npz"]["heldout"],
                                  resumed["arrays"]["fingerprints.npz"]["heldout"])


def test_early_stop_ends_delay_steps_after_the_threshold(tmp_path):
    # held-out accuracy at init is >= 0 > ... so threshold 1e-9 is reached at step 0 exactly
    # when the accuracy is positive; use the first evaluation that reaches a tiny threshold
    cfg = _tiny(early_stop_accuracy=1e-9, early_stop_delay=10)
    log = train(cfg, tmp_path / "r")
    rows = pd.DataFrame(log["metrics"])
    reached = grok_step(rows, threshold=1e-9)
    assert log["reached_at"] == reached
    assert log["last_step"] == min(30, reached + 10) and log["done"]
    assert rows.step.max() == log["last_step"]
    assert np.isnan(log["train_loss"][log["last_step"]:]).all()
    assert not np.isnan(log["train_loss"][:log["last_step"]]).any()


def test_early_stop_is_stored_and_truncates_the_run(tmp_path, monkeypatch):
    from modadd import store
    monkeypatch.setenv("MODADD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MODADD_RESULTS_DIR", str(tmp_path / "results"))
    cfg = _tiny(early_stop_accuracy=1e-9, early_stop_delay=5)
    run = store.load_or_train(cfg, trajectories=True, progress=False)
    assert run.last_step == run.reached_at + 5 < cfg.train.n_steps
    assert run.snapshot_steps[-1] == run.last_step
    assert len(run.snapshots) == len(run.snapshot_steps)
    assert len(run.train_log) == run.last_step
    again = store.find_run(cfg)          # from the committed results folder
    np.testing.assert_array_equal(again.fingerprints["heldout"], run.fingerprints["heldout"])
    assert again.fingerprints["steps"][-1] <= run.last_step


def test_init_perturbation_is_relative_seeded_and_keeps_the_data_order(tmp_path):
    cfg = _tiny()
    base = build_model(cfg.model, cfg.task, 0)
    moved = build_model(cfg.model, cfg.task, 0)
    perturb_parameters(moved, 1e-3, 7)
    ratios = torch.cat([(m / b - 1).detach().reshape(-1)[b.reshape(-1) != 0]
                        for m, b in zip(moved.parameters(), base.parameters())])
    assert abs(float(ratios.std()) - 1e-3) < 1e-4 and abs(float(ratios.mean())) < 1e-4
    again = build_model(cfg.model, cfg.task, 0)
    perturb_parameters(again, 1e-3, 7)
    assert all(torch.equal(x, y) for x, y in zip(moved.parameters(), again.parameters()))
    zero = build_model(cfg.model, cfg.task, 0)
    perturb_parameters(zero, 0.0, 7)
    assert all(torch.equal(x, y) for x, y in zip(zero.parameters(), base.parameters()))
    # a perturbed run differs from its base, but by little early on
    a = train(_tiny(), tmp_path / "a")
    b = train(_tiny(init_perturbation=1e-3, perturbation_seed=1), tmp_path / "b")
    assert a["train_loss"][0] != b["train_loss"][0]
    assert abs(a["train_loss"][0] - b["train_loss"][0]) < 1e-2
    assert stream_seed(4, "perturb:1") != stream_seed(4, "perturb:2")


def test_grok_step_is_the_first_evaluation_at_the_threshold():
    rows = pd.DataFrame({"step": [0, 50, 100, 150, 200], "metric": "accuracy", "m": 0,
                         "layer": -1, "value": [0.0, 0.5, 0.991, 0.98, 1.0]})
    assert grok_step(rows) == 100
    assert grok_step(rows, threshold=0.999) == 200
    assert grok_step(rows, threshold=1.01) is None


def test_presets_follow_their_sources():
    power = grokking_preset("power")
    assert power.task.p == 97 and power.task.train_fraction == 0.4
    n_train = round(0.4 * 97 * 97)
    assert power.train.batch_size == min(512, math.ceil(n_train / 2)) == 512
    assert power_batch_size(AlgorithmicTask(p=23, train_fraction=0.3)) == math.ceil(
        round(0.3 * 23 * 23) / 2)
    assert power.train.beta2 == 0.98 and power.train.warmup_steps == 10
    assert power.model.n_layers == 2 and power.model.mlp_width == 512
    # openai/grok's code (grok/data.py, grok/transformer.py); the old recipe kept by name
    assert (power.model.norm_position, power.model.positions, power.model.biases) == \
        ("post", "sinusoidal", "none")
    assert power.task.seq_len == 5 and power.task.n_classes == power.task.vocab_size == 100
    assert power.task.split_method == "numpy-shuffle" and power.train.sampling == "epochs"
    assert power.task.eos_target        # his loss over "c <eos>"; the answer-only variant kept
    answer_loss = grokking_preset("power-answer-loss")
    assert replace(power, task=replace(power.task, eos_target=False)) == answer_loss
    default_arch = grokking_preset("power-default-arch")
    assert replace(power, task=default_arch.task, model=default_arch.model,
                   train=default_arch.train) == default_arch
    assert replace(default_arch.train, n_steps=6000, snapshot_every=50, record_every=10,
                   probe_size=500, fingerprint_train=True) == grokking_preset("book").train
    nanda = grokking_preset("nanda")
    assert nanda.task.p == 113 and not nanda.model.layer_norm and nanda.model.d_mlp == 512
    assert nanda.train.batch_size == len(nanda.task.split()[0])    # full batch
    # his code's recipe (progress-measures-paper transformers.py), the old one kept by name
    assert nanda.task.seq_len == 3 and nanda.task.n_classes == 114
    assert (nanda.model.init, nanda.model.biases) == ("nanda", "mlp")
    assert nanda.train.warmup_steps == 10 and nanda.train.loss_dtype == "float64"
    old = grokking_preset("nanda-default-init")
    assert old.task.seq_len == 4 and old.model.init == "torch" and old.train.warmup_steps == 0
    assert replace(nanda, task=old.task, model=old.model, train=old.train) == old
    assert grokking_preset("fingerprint", 0.0).train.n_steps == 10_000
    assert grokking_preset("book", 2.0, seed=3).train.weight_decay == 2.0
    perturbed = grokking_preset("book", 1.0, 0, perturbation_seed=2)
    assert perturbed.train.init_perturbation == 1e-3
    assert perturbed.key(1) != grokking_preset("book", 1.0, 0).key(1)
    study = grokking_study("smoke", seeds=2, perturbations=3)
    assert len(study["main"]) == 6 and len(study["perturbed"]) == 3
    assert len({c.key(1) for c in study["main"] + study["perturbed"]}) == 9
    with pytest.raises(ValueError, match="preset"):
        grokking_preset("nope")


def test_model_options_without_layernorm_and_with_relu():
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, attention_only=False,
                      layer_norm=False, activation="relu", d_mlp=24)
    model = build_model(cfg, AlgorithmicTask(p=5), 0)
    names = [n for n, _ in model.named_parameters()]
    assert not any("ln" in n for n in names)
    assert model.blocks[0].mlp[0].weight.shape == (24, 16)
    assert isinstance(model.blocks[0].mlp[1], torch.nn.ReLU)
    tokens = AlgorithmicTask(p=5).tokens(AlgorithmicTask(p=5).pairs()[:3])
    x = model.embed(tokens) + model.pos_embed(torch.arange(4))
    update, _ = model.blocks[0].attn(x)
    x = x + update
    x = x + model.blocks[0].mlp(x)
    torch.testing.assert_close(model(tokens), model.head(x[:, -1]))


# ---- spectra and their comparison ---------------------------------------------------------------
def test_fit_spectra_recovers_a_rotation_through_the_fingerprint_coordinates():
    from modadd.grokking import fit_spectra
    theta = 2 * np.pi / 20
    t = np.arange(200)                      # ten whole periods: the time mean is exactly 0
    latent = np.stack([np.cos(theta * t), np.sin(theta * t)], axis=1)
    mixing = np.random.default_rng(0).normal(size=(2, 19))
    series = latent @ mixing + 3.0          # an offset, removed by the centring
    truth = np.sort_complex(np.exp([-1j * theta, 1j * theta]))
    models, errors = fit_spectra(series, n_delays=3, rank=2, ridge=0.0, horizons=(1, 25))
    for model in models.values():
        np.testing.assert_allclose(np.sort_complex(model.eigenvalues), truth, atol=1e-8)
    assert (errors[["one-step", "1-step rollout", "25-step rollout"]] < 1e-8).all().all()
    # the default ridge (1e-6) biases RRR only slightly
    models, errors = fit_spectra(series, n_delays=3, rank=2, horizons=(1, 25))
    np.testing.assert_allclose(np.sort_complex(models["rrr"].eigenvalues), truth, atol=1e-5)
    assert errors["one-step"].max() < 1e-5


def test_group_means_by_hand():
    from modadd.grokking import _group_means, pair_distances
    D = np.array([[0, 1, 4, 5], [1, 0, 6, 7], [4, 6, 0, 2], [5, 7, 2, 0]], float)
    labels = np.array([0, 0, 1, 1])
    within, between = _group_means(D, labels, np.arange(4))
    assert within == pytest.approx((1 + 2) / 2) and between == pytest.approx((4 + 5 + 6 + 7) / 4)
    # a bootstrap that draws run 0 twice never pairs it with itself
    within, between = _group_means(D, labels, np.array([0, 0, 2]))
    assert np.isnan(within) and between == pytest.approx(4.0)
    np.testing.assert_array_equal(pair_distances(D, [0, 2, 3]), [4, 5, 2])


def test_separation_finds_planted_conditions_and_not_shuffled_ones():
    from modadd.grokking import separation
    rng = np.random.default_rng(1)
    labels = np.repeat([0.0, 1.0, 2.0], 5)
    seeds = np.tile(np.arange(5), 3)
    points = labels * 10 + rng.normal(size=15)
    D = np.abs(points[:, None] - points[None, :])
    s = separation(D, labels, seeds, n_boot=300, n_perm=500)
    assert s["p (permutation)"] < 0.01 and s["1-NN accuracy"] == 1.0
    assert s["ratio CI"][0] > 5 and s["chance"] == pytest.approx(1 / 3)
    flat = rng.normal(size=15)
    D0 = np.abs(flat[:, None] - flat[None, :])
    s0 = separation(D0, labels, seeds, n_boot=300, n_perm=500)
    assert s0["p (permutation)"] > 0.05 and s0["ratio CI"][0] < 1 < s0["ratio CI"][1]


def test_distance_matrix_matches_spectral_distance():
    from modadd.dmd import spectral_distance
    from modadd.grokking import distance_matrix
    eig = pd.DataFrame({"key": ["a", "a", "b", "b"], "method": "rrr", "index": [0, 1, 0, 1],
                        "re": [1.0, 0.5, 0.9, 0.0], "im": [0.0, 0.5, 0.0, 0.0]})
    D = distance_matrix(eig, ["a", "b"], "rrr")
    assert D[0, 1] == D[1, 0] == pytest.approx(
        spectral_distance(np.array([1, 0.5 + 0.5j]), np.array([0.9, 0.0])))
    assert D[0, 0] == 0


def test_pooled_spectrum_of_two_runs_of_one_system_recovers_it(tmp_path):
    from types import SimpleNamespace

    from modadd.grokking import pooled_spectrum
    theta = 2 * np.pi / 20
    mixing = np.random.default_rng(0).normal(size=(2, 19))
    runs = []
    for phase in (0.0, 1.0):
        t = np.arange(100)
        latent = np.stack([np.cos(theta * t + phase), np.sin(theta * t + phase)], axis=1)
        arrays = {"steps": t, "heldout": latent @ mixing}
        runs.append(SimpleNamespace(fingerprints=arrays, key=str(phase)))
    eig = pooled_spectrum(runs, n_delays=2, rank=2, ridge=0.0)
    np.testing.assert_allclose(np.sort_complex(eig),
                               np.sort_complex(np.exp([-1j * theta, 1j * theta])), atol=1e-8)


def test_first_step_at_is_the_one_ground_truth():
    from modadd.grokking import first_step_at
    assert first_step_at([0, 10, 20], [0.5, 0.99, 1.0]) == 10
    assert first_step_at([0, 10, 20], [0.5, 0.98, 0.985]) is None
    assert first_step_at([0, 10, 20], [0.5, 0.7, 0.8], threshold=0.7) == 10


class _FakeRun:
    def __init__(self, cfg, train_loss, evals):
        self.config = cfg
        self.train_log = pd.DataFrame({"step": np.arange(1, len(train_loss) + 1),
                                       "loss": train_loss})
        rows = [dict(step=step, m=0, metric=name, layer=-1, value=value)
                for step, metrics in evals.items() for name, value in metrics.items()]
        self.metrics = pd.DataFrame(rows)


def test_nanda_milestones_and_comparison_by_hand():
    from modadd.grokking import NANDA_REFERENCE, milestones, nanda_comparison, nanda_table
    cfg = grokking_preset("nanda")
    # train-log step s holds the loss before update s, i.e. after s - 1 updates
    loss = np.array([5.0, 1.0, 0.5, 0.009, 0.001])
    evals = {0: {"loss": 4.7, "accuracy": 0.01}, 10: {"loss": 6.0, "accuracy": 0.5},
             20: {"loss": 0.5, "accuracy": 0.96}, 30: {"loss": 0.009, "accuracy": 1.0}}
    got = milestones(_FakeRun(cfg, loss, evals))
    assert got == {"train loss < 1e-2": 3, "test loss < 1e-2": 30,
                   "test accuracy >= 0.95": 20, "test-loss peak": 6.0}
    never = milestones(_FakeRun(cfg, np.ones(5), {0: {"loss": 3.0, "accuracy": 0.0}}))
    assert never["train loss < 1e-2"] is None and never["test loss < 1e-2"] is None
    half = replace(cfg, task=replace(cfg.task, train_fraction=0.5))
    his = NANDA_REFERENCE[0.5]
    runs = [_FakeRun(replace(half, seed=s), np.r_[np.ones(his["train loss < 1e-2"] + d), 1e-3],
                     {0: {"loss": 1.0, "accuracy": 0.0},
                      his["test loss < 1e-2"] + d: {"loss": 1e-3, "accuracy": 1.0}})
            for s, d in ((0, 10), (1, 60))]
    table = nanda_table(runs)
    assert table["train loss < 1e-2"].tolist() == [his["train loss < 1e-2"] + 10,
                                                   his["train loss < 1e-2"] + 60]
    comparison = nanda_comparison(table).set_index("milestone")
    row = comparison.loc["train loss < 1e-2"]
    assert row["mean / his"] == pytest.approx((his["train loss < 1e-2"] + 35)
                                              / his["train loss < 1e-2"])
    # +60 of 272 is 22%: inside ±25%; +60 of 1109 too; a 0.2 tolerance puts the first outside
    assert row["every seed within ±25%"] and comparison.loc["test loss < 1e-2",
                                                          "every seed within ±25%"]
    strict = nanda_comparison(table, tolerance=0.2).set_index("milestone")
    assert not strict.loc["train loss < 1e-2", "every seed within ±20%"]
    assert comparison.loc["test accuracy >= 0.95", "every seed within ±25%"] is None


def test_nanda_ablation_changes_one_recipe_difference_per_arm():
    from modadd.grokking import NANDA_ABLATIONS, nanda_ablation, nanda_sweep
    from modadd.presets import config_differences
    base = nanda_sweep("nanda", (0.5,), 1)[0]
    arms = nanda_ablation()
    assert list(arms) == list(NANDA_ABLATIONS)
    changed = {arm: set(config_differences(base, cfg).setting) for arm, cfg in arms.items()}
    assert changed == {"his split": {"task.split_method"}, "PyTorch init": {"model.init"},
                       "biases everywhere": {"model.biases"},
                       "a + b = over the residues": {"task.operator_token",
                                                     "task.readout_all_tokens"},
                       "no warm-up": {"train.warmup_steps"},
                       "float32 loss": {"train.loss_dtype"}}
    with pytest.raises(ValueError, match="arms: must be among"):
        nanda_ablation(("dropout",))


def test_power_ablation_puts_back_one_default_per_arm():
    from modadd.grokking import POWER_ABLATIONS, fraction_sweep, power_ablation
    from modadd.presets import config_differences
    base = fraction_sweep("power-answer-loss", (0.5,), 2)[1]
    arms = power_ablation(fraction=0.5, seed=1)
    assert list(arms) == list(POWER_ABLATIONS)
    changed = {arm: set(config_differences(base, cfg).setting) for arm, cfg in arms.items()}
    assert changed == {"pre-LN": {"model.norm_position"}, "learned positions": {"model.positions"},
                       "biases everywhere": {"model.biases"},
                       "no start token": {"task.start_token"},
                       "readout over the residues": {"task.readout_all_tokens"},
                       "our split": {"task.split_method"}, "uniform batches": {"train.sampling"}}
    # every arm together is the recipe on this study's defaults
    default_arch = fraction_sweep("power-default-arch", (0.5,), 2)[1]
    every = base
    for arm in POWER_ABLATIONS.values():
        every = arm(every)
    assert every == default_arch


def test_recipe_ablation_table_divides_each_arm_by_the_unchanged_run():
    from modadd.grokking import recipe_ablation_table
    steps = {"base": 400, "a": 600, "b": None}
    table = recipe_ablation_table("base", {"x": "a", "y": "b"},
                           lambda run: {"step": steps[run], "name": run}, "step")
    assert list(table.arm) == ["none", "x", "y"] and list(table.name) == ["base", "a", "b"]
    ratio = table["step: / unchanged"].to_numpy()
    assert ratio[0] == 1.0 and ratio[1] == 1.5 and np.isnan(ratio[2])
