"""Seed ensembles equal sequential training per seed (up to float rounding), refuse what they do
not support, and store runs that ``load_or_train`` then finds like sequential ones.

Tolerance: rtol 1e-4, atol 1e-5.  The stacked forward/backward sums in another order than the
per-seed one (batched matmuls), so numbers differ by float32 rounding; over these few dozen steps
the observed differences are < 3e-7 (losses, gradient norms, metrics, snapshots, weights), and the
tolerance leaves room for other BLAS builds without hiding a real error (a wrong batch, seed,
learning rate or optimizer state changes losses by > 1e-3 within a step or two).

One exception: the key bias (rows ``d:2d`` of ``qkv.bias``).  Softmax ignores a constant added to
every score, so its exact gradient is zero and the computed one is float noise (~1e-10); AdamW
normalises that noise into full-size steps, so under AdamW the key bias is a random walk in
sequential training too and is compared only through the model's outputs.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import modadd.runner as runner
from modadd import ensemble, store
from modadd.algorithmic import AlgorithmicTask
from modadd.config import RunConfig, TrainConfig
from modadd.ensemble import train_ensemble
from modadd.model import ModelConfig, Transformer
from modadd.presets import curriculum, preset
from modadd.taskdata import probe_sets
from modadd.train import train

RTOL, ATOL = 1e-4, 1e-5
SEEDS = (0, 1, 2)
SMALL = replace(preset("smoke"), train=replace(preset("smoke").train, n_steps=30,
                                               snapshot_every=10))
VARIANTS = {
    "adamw": SMALL,
    # SGD with momentum and L2 weight decay, cosine lr with warm-up, full parameter vectors
    "sgd": replace(SMALL, train=replace(SMALL.train, optimizer="sgd", lr=0.05, momentum=0.9,
                                        weight_decay=1e-3, lr_schedule="cosine",
                                        warmup_steps=5, store_full_params=True)),
    # curriculum with an optimizer reset per stage, linear weight-decay ramp, perturbed init
    "curriculum": replace(curriculum(SMALL), train=replace(
        curriculum(SMALL).train, wd_schedule="linear", wd_final_ratio=0.0,
        init_perturbation=0.05)),
}


def _close(actual, expected, what: str) -> None:
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=RTOL, atol=ATOL, err_msg=what)


def _metric_table(rows: list[dict]) -> tuple[list[tuple], np.ndarray]:
    return ([(r["step"], r["m"], r["metric"], r["layer"]) for r in rows],
            np.array([r["value"] for r in rows]))


def _key_bias_mask(state: dict, cfg: RunConfig) -> dict:
    """True where a final weight is compared entrywise (all but AdamW's key bias)."""
    d = cfg.model.d_model
    masks = {}
    for name, tensor in state.items():
        mask = torch.ones_like(tensor, dtype=torch.bool)
        if cfg.train.optimizer == "adamw" and name.endswith("attn.qkv.bias"):
            mask[d:2 * d] = False
        masks[name] = mask
    return masks


def assert_matches_sequential(cfg: RunConfig, ens_dir: Path, ens_log: dict, seq_dir: Path,
                              seq_log: dict) -> None:
    """Everything ``train`` returns and writes agrees within the tolerance."""
    for name in ("train_loss", "grad_norm"):
        assert np.isfinite(ens_log[name]).all()
        _close(ens_log[name], seq_log[name], name)
    keys, values = _metric_table(ens_log["metrics"])
    seq_keys, seq_values = _metric_table(seq_log["metrics"])
    assert keys == seq_keys
    _close(values, seq_values, "metrics")
    assert (ens_log["done"], ens_log["last_step"], ens_log["reached_at"], ens_log["arrays"]) == \
        (seq_log["done"], seq_log["last_step"], seq_log["reached_at"], seq_log["arrays"])
    files = ["snapshots.npy"] + (["params.npy", "updates.npy"]
                                 if cfg.train.store_full_params else [])
    for name in files:
        _close(np.load(ens_dir / name), np.load(seq_dir / name), name)
    ens_state, seq_state = (torch.load(d / "final_model.pt") for d in (ens_dir, seq_dir))
    assert ens_state.keys() == seq_state.keys()
    for name, mask in _key_bias_mask(seq_state, cfg).items():
        _close(ens_state[name][mask], seq_state[name][mask], name)
    # the final models compute the same function (this covers the key bias too)
    models = []
    for state in (ens_state, seq_state):
        model = Transformer.for_task(cfg.model, cfg.task)
        model.load_state_dict(state)
        models.append(model.eval())
    tokens = probe_sets(cfg)[max(cfg.task.m_values)].tokens
    with torch.no_grad():
        _close(models[0](tokens), models[1](tokens), "final logits")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ensemble_equals_sequential_per_seed(tmp_path, variant):
    cfgs = [VARIANTS[variant].with_seed(seed) for seed in SEEDS]
    steps = []
    logs = train_ensemble(cfgs, [tmp_path / f"ens{seed}" for seed in SEEDS],
                          progress=steps.append)
    assert sum(steps) == len(SEEDS) * cfgs[0].train.n_steps
    for cfg, log in zip(cfgs, logs):
        seq_dir = tmp_path / f"seq{cfg.seed}"
        assert_matches_sequential(cfg, tmp_path / f"ens{cfg.seed}", log, seq_dir,
                                  train(cfg, seq_dir))
        assert not (tmp_path / f"ens{cfg.seed}" / "checkpoint.pt").exists()
    # the seeds really are different runs (own init, data and probes)
    assert np.abs(logs[0]["train_loss"] - logs[1]["train_loss"]).max() > 1e-3


def test_ensemble_of_one_equals_sequential(tmp_path):
    cfg = replace(SMALL, train=replace(SMALL.train, n_steps=12, snapshot_every=4))
    [log] = train_ensemble([cfg], [tmp_path / "ens"])
    assert_matches_sequential(cfg, tmp_path / "ens", log, tmp_path / "seq",
                              train(cfg, tmp_path / "seq"))


@pytest.mark.parametrize("change, field", [
    (lambda c: replace(c, train=replace(c.train, lr=1e-3)), "train.lr"),
    (lambda c: replace(c, model=replace(c.model, d_model=16)), "model.d_model"),
    (lambda c: replace(c, task=replace(c.task, C=7)), "task.C"),
])
def test_configs_differing_beyond_the_seed_are_refused(tmp_path, change, field):
    cfgs = [SMALL, change(SMALL.with_seed(1))]
    with pytest.raises(ValueError, match=rf"^{field}: .*differ only in seed"):
        train_ensemble(cfgs, [tmp_path / "a", tmp_path / "b"])
    assert not any(tmp_path.iterdir())     # refused before anything was written


def test_unsupported_settings_are_refused(tmp_path):
    algorithmic = RunConfig(task=AlgorithmicTask(p=5), model=ModelConfig(n_layers=1, d_model=8,
                                                                          n_heads=1),
                            train=TrainConfig(n_steps=5))
    cases = {
        "task": algorithmic,
        "diagnostics_every": replace(SMALL, train=replace(SMALL.train, diagnostics_every=5)),
        "lr_schedule": replace(SMALL, train=replace(SMALL.train, lr_schedule="plateau")),
        "loss_dtype": replace(SMALL, train=replace(SMALL.train, loss_dtype="float64")),
    }
    for field, cfg in cases.items():
        assert ensemble.unsupported_reason(cfg).startswith(f"{field}:")
        with pytest.raises(ValueError, match=f"ensemble: {field}:"):
            train_ensemble([cfg, cfg.with_seed(1)], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="seed: .*distinct"):
        train_ensemble([SMALL, SMALL], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="run_dirs: need 2 distinct"):
        train_ensemble([SMALL, SMALL.with_seed(1)], [tmp_path / "a", tmp_path / "a"])
    assert not any(tmp_path.iterdir())
    train(SMALL, tmp_path / "a", stop_after=3)      # an interrupted sequential run
    with pytest.raises(ValueError, match="run_dirs: .*checkpoint.pt"):
        train_ensemble([SMALL, SMALL.with_seed(1)], [tmp_path / "a", tmp_path / "b"])
    assert ensemble.unsupported_reason(SMALL) is None


def test_load_or_train_many_ensemble_stores_runs_like_sequential(tmp_path, monkeypatch):
    base = replace(SMALL, train=replace(SMALL.train, n_steps=20))
    group = [base.with_seed(seed) for seed in SEEDS]
    odd = replace(base, train=replace(base.train, lr=1e-3))     # a group of one: sequential
    resumable = base.with_seed(7)                               # interrupted sequential run
    train(resumable, store.partial_run_dir(store.run_key(resumable)), stop_after=5)

    ensembles, sequential = [], []
    real_ensemble, real_sequential = ensemble.train_ensemble, runner.train_and_store
    monkeypatch.setattr(ensemble, "train_ensemble", lambda cfgs, *a, **k: (
        ensembles.append([c.seed for c in cfgs]), real_ensemble(cfgs, *a, **k))[1])
    monkeypatch.setattr(runner, "train_and_store", lambda cfg, *a, **k: (
        sequential.append(cfg), real_sequential(cfg, *a, **k))[1])
    cfgs = [*group, odd, resumable]
    runs = store.load_or_train_many(cfgs, n_workers=1, trajectories=True, progress=False,
                                    ensemble=True)
    assert ensembles == [list(SEEDS)] and sequential == [odd, resumable]

    def refuse(*args, **kwargs):
        raise AssertionError("retrained a stored run")
    monkeypatch.setattr(ensemble, "train_ensemble", refuse)
    monkeypatch.setattr(runner, "train", refuse)
    reference = store.find_run(odd, trajectories=True)      # stored by the sequential path
    listing = sorted(p.name for p in reference.cache_path.iterdir())
    results = sorted(p.name for p in reference.summary_path.iterdir())
    for cfg, run in zip(group, runs):
        again = store.load_or_train(cfg, trajectories=True, progress=False)
        assert again.key == run.key == store.run_key(cfg)
        assert sorted(p.name for p in again.cache_path.iterdir()) == listing
        assert sorted(p.name for p in again.summary_path.iterdir()) == results
        assert again.meta.keys() == reference.meta.keys()
        seq_dir = tmp_path / f"seq{cfg.seed}"
        seq = train(cfg, seq_dir)          # modadd.train.train itself, not the patched name
        _close(again.train_log["loss"], seq["train_loss"], "stored loss")
        _close(again.train_log["grad_norm"], seq["grad_norm"], "stored grad_norm")
        keys, values = _metric_table(seq["metrics"])
        stored = again.metrics
        assert list(zip(stored.step, stored.m, stored.metric, stored.layer)) == keys
        _close(stored.value, values, "stored metrics")
        _close(again.snapshots, np.load(seq_dir / "snapshots.npy"), "stored snapshots")
        assert again.meta["final_accuracy"].keys() == {str(m) for m in cfg.task.m_values}
    assert not any(p.name.endswith(".partial") for p in reference.cache_path.parent.iterdir())
