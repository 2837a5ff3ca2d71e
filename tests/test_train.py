"""Training: determinism, resume bit-identity (in-process and after SIGKILL), RNG streams."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from modadd.config import RunConfig, TrainConfig, stream_seed
from modadd.model import ModelConfig, build_model
from modadd.task import TaskConfig, sample_batch
from modadd.taskdata import evaluate_probes, probe_sets, training_batch
from modadd.train import snapshot_steps, train
from modadd.schedules import lr_at_step

ROOT = Path(__file__).resolve().parent.parent
TINY = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                 model=ModelConfig(n_layers=1, d_model=16, n_heads=2),
                 train=TrainConfig(lr=3e-3, batch_size=16, n_steps=40, snapshot_every=10,
                                   probe_size=64, checkpoint_every=10, store_full_params=True))


def assert_runs_equal(dir_a: Path, log_a: dict, dir_b: Path, log_b: dict) -> None:
    np.testing.assert_array_equal(log_a["train_loss"], log_b["train_loss"])
    np.testing.assert_array_equal(log_a["grad_norm"], log_b["grad_norm"])
    assert log_a["metrics"] == log_b["metrics"]
    for name in ("snapshots.npy", "params.npy", "updates.npy"):
        np.testing.assert_array_equal(np.load(dir_a / name), np.load(dir_b / name))
    state_a, state_b = (torch.load(d / "final_model.pt") for d in (dir_a, dir_b))
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_same_config_same_numbers(tmp_path):
    a, b = train(TINY, tmp_path / "a"), train(TINY, tmp_path / "b")
    assert a["done"] and np.isfinite(a["train_loss"]).all()
    assert_runs_equal(tmp_path / "a", a, tmp_path / "b", b)


def test_resume_after_stop_is_bit_identical(tmp_path):
    partial = train(TINY, tmp_path / "resumed", stop_after=17)
    assert not partial["done"] and partial["step"] == 17
    resumed = train(TINY, tmp_path / "resumed")
    straight = train(TINY, tmp_path / "straight")
    assert_runs_equal(tmp_path / "resumed", resumed, tmp_path / "straight", straight)


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    cfg = replace(TINY, train=replace(TINY.train, n_steps=500, snapshot_every=100,
                                      checkpoint_every=20))
    killed = tmp_path / "killed"
    script = ("import sys; from pathlib import Path; from modadd.config import RunConfig; "
              "from modadd.train import train; import json, torch; torch.set_num_threads(1); "
              f"train(RunConfig.from_dict(json.loads(sys.argv[1])), Path({str(killed)!r}))")
    import json
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script, json.dumps(cfg.to_dict())], env=env)
    deadline = time.time() + 600  # generous: a loaded machine imports torch slowly
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)  # die between checkpoints, with snapshot writes possibly past the checkpoint
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert (killed / "checkpoint.pt").exists()
    assert not (killed / "final_model.pt").exists(), "the child finished before it was killed"
    step = torch.load(killed / "checkpoint.pt", weights_only=False)["step"]
    assert 0 < step < cfg.train.n_steps
    resumed = train(cfg, killed)
    straight = train(cfg, tmp_path / "straight")
    assert resumed["done"]
    assert_runs_equal(killed, resumed, tmp_path / "straight", straight)


def test_measurement_settings_do_not_change_training(tmp_path):
    base = train(TINY, tmp_path / "base")
    measured_more = replace(TINY, train=replace(TINY.train, probe_size=200, snapshot_every=3))
    other = train(measured_more, tmp_path / "more")
    np.testing.assert_array_equal(base["train_loss"], other["train_loss"])
    reseeded = train(replace(TINY, seed=1), tmp_path / "seed1")
    assert not np.array_equal(base["train_loss"], reseeded["train_loss"])


def test_snapshot_steps_and_endpoints(tmp_path):
    cfg = replace(TINY, train=replace(TINY.train, n_steps=35, snapshot_every=10))
    assert snapshot_steps(cfg).tolist() == [0, 10, 20, 30, 35]
    train(cfg, tmp_path)
    snapshots = np.load(tmp_path / "snapshots.npy")
    assert snapshots.shape == (5, 1, 4, 16, 16)
    initial = build_model(cfg.model, cfg.task, stream_seed(cfg.seed, "init"))
    np.testing.assert_array_equal(snapshots[0], initial.attention_matrices().numpy())
    final = build_model(cfg.model, cfg.task, 0)
    final.load_state_dict(torch.load(tmp_path / "final_model.pt"))
    np.testing.assert_array_equal(snapshots[-1], final.attention_matrices().numpy())
    params = np.load(tmp_path / "params.npy")
    np.testing.assert_array_equal(params[-1], final.flat_parameters().numpy())


def test_updates_are_the_single_step_after_each_snapshot(tmp_path):
    every_step = replace(TINY, train=replace(TINY.train, snapshot_every=1))
    train(TINY, tmp_path / "sparse")
    train(every_step, tmp_path / "dense")
    dense = np.load(tmp_path / "dense" / "params.npy").astype(np.float64)
    updates = np.load(tmp_path / "sparse" / "updates.npy")
    sparse_steps = snapshot_steps(TINY)
    assert updates.shape == (len(sparse_steps) - 1, dense.shape[1])
    expected = (dense[sparse_steps[:-1] + 1] - dense[sparse_steps[:-1]]).astype(np.float32)
    np.testing.assert_array_equal(updates, expected)
    assert (np.abs(updates).max(axis=1) > 0).all()


def test_evaluate_matches_recomputation():
    cfg = replace(TINY, model=replace(TINY.model, n_layers=2))
    model = build_model(cfg.model, cfg.task, 3)
    probes = probe_sets(cfg)
    rows = evaluate_probes(model, probes, step=0, chunk=25)
    assert {r["step"] for r in rows} == {0}
    for m, batch in probes.items():
        assert (batch.m == m).all()
        logits, cache = model.run_with_cache(batch.tokens)
        by_metric = {r["metric"]: r["value"] for r in rows if r["m"] == m and r["layer"] == -1}
        assert by_metric["accuracy"] == pytest.approx(
            (logits.argmax(-1) == batch.labels).float().mean().item())
        assert by_metric["loss"] == pytest.approx(F.cross_entropy(logits, batch.labels).item(),
                                                  rel=1e-5)
        entropy_rows = [r for r in rows if r["m"] == m and r["metric"] == "entropy"]
        assert [r["layer"] for r in entropy_rows] == [0, 1]
        for row in entropy_rows:
            row_attn = cache["attn"][row["layer"]][:, :, -1].detach().numpy().astype(np.float64)
            by_hand = -(row_attn * np.log(np.maximum(row_attn, 1e-30))).sum(-1).mean()
            assert row["value"] == pytest.approx(by_hand, rel=1e-5)
    assert {len(b.tokens) for b in probes.values()} == {cfg.train.probe_size}
    # probes: fixed (eval stream), per-example positions even for a per_batch task
    shared = replace(cfg, task=replace(cfg.task, positions="per_batch"))
    again = probe_sets(shared)
    assert all(torch.equal(again[m].tokens, probes[m].tokens) for m in probes)
    assert len({tuple(r) for r in probes[2].marker_positions.tolist()}) > 1
    # drawn from the "eval" stream alone, m by m in m_values order
    eval_gen = torch.Generator().manual_seed(stream_seed(cfg.seed, "eval"))
    per_example = replace(cfg.task, positions="per_example")
    for m in cfg.task.m_values:
        expected = sample_batch(per_example, cfg.train.probe_size, m, generator=eval_gen)
        assert torch.equal(probes[m].tokens, expected.tokens)
        assert torch.equal(probes[m].labels, expected.labels)


def test_training_batch_follows_schedule():
    gen = torch.Generator().manual_seed(0)
    per_batch = [training_batch(TINY, s, gen).m for s in range(40)]
    assert all(int(m.unique().numel()) == 1 for m in per_batch)
    assert {int(m[0]) for m in per_batch} == {1, 2}
    per_example = replace(TINY, train=replace(TINY.train, mixed_per="example"))
    batch = training_batch(per_example, 0, gen)
    assert set(batch.m.tolist()) == {1, 2}
    stages = replace(TINY, train=replace(TINY.train, schedule="curriculum",
                                         curriculum=((2, 3), (1, 4)), n_steps=7))
    assert [int(training_batch(stages, s, gen).m.unique()) for s in range(7)] == \
        [2, 2, 2, 1, 1, 1, 1]
    single = replace(TINY, train=replace(TINY.train, schedule="single", single_m=2))
    assert all((training_batch(single, s, gen).m == 2).all() for s in range(5))


@pytest.mark.parametrize("stop", [13, 20], ids=["mid-stage", "at-boundary"])
def test_curriculum_resume_is_bit_identical(tmp_path, stop):
    cfg = replace(TINY, train=replace(TINY.train, schedule="curriculum",
                                      curriculum=((1, 20), (2, 20)), n_steps=40))
    partial = train(cfg, tmp_path / "resumed", stop_after=stop)
    assert partial["step"] == stop
    resumed = train(cfg, tmp_path / "resumed")
    straight = train(cfg, tmp_path / "straight")
    assert_runs_equal(tmp_path / "resumed", resumed, tmp_path / "straight", straight)


def test_curriculum_optimizer_reset(tmp_path):
    stages = replace(TINY.train, schedule="curriculum", curriculum=((1, 20), (2, 20)),
                     n_steps=40)
    reset = train(replace(TINY, train=stages), tmp_path / "reset")
    kept = train(replace(TINY, train=replace(stages, reset_optimizer=False)), tmp_path / "kept")
    np.testing.assert_array_equal(reset["train_loss"][:21], kept["train_loss"][:21])
    assert not np.array_equal(reset["train_loss"][21:], kept["train_loss"][21:])
    state = torch.load(tmp_path / "reset" / "checkpoint.pt", weights_only=False)
    adam_steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert adam_steps == {20.0}  # counted from the stage boundary, not from step 0


def test_sgd_decreases_loss(tmp_path):
    cfg = replace(TINY, train=replace(TINY.train, optimizer="sgd", lr=0.3, momentum=0.9,
                                      n_steps=150, snapshot_every=50))
    log = train(cfg, tmp_path)
    assert log["train_loss"][-20:].mean() < log["train_loss"][:20].mean()


def test_lr_schedule_reaches_the_optimizer(tmp_path):
    cfg = replace(TINY, train=replace(TINY.train, lr_schedule="cosine", warmup_steps=5,
                                      lr_final_ratio=0.1))
    for stop in (3, 17):
        train(cfg, tmp_path / str(stop), stop_after=stop)
        state = torch.load(tmp_path / str(stop) / "checkpoint.pt", weights_only=False)
        assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
            lr_at_step(cfg.train, stop - 1))
    full = train(cfg, tmp_path / "full")
    constant = train(TINY, tmp_path / "constant")
    assert not np.array_equal(full["train_loss"], constant["train_loss"])
    # the first update is identical up to the learning rate: same data, same initial loss
    assert full["train_loss"][0] == constant["train_loss"][0]


def test_model_at_rebuilds_the_stored_snapshots(tmp_path):
    from modadd.store import load_or_train
    run = load_or_train(TINY, trajectories=True, progress=False)
    final = run.model_at(-1)
    state = run.final_state_dict()
    assert all(torch.equal(final.state_dict()[k], state[k]) for k in state)
    first = run.model_at(0)
    initial = build_model(TINY.model, TINY.task, stream_seed(TINY.seed, "init"))
    assert all(torch.equal(first.state_dict()[k], initial.state_dict()[k])
               for k in initial.state_dict())
    np.testing.assert_array_equal(first.attention_matrices().numpy(), run.snapshots[0])
    with pytest.raises(ValueError, match="index"):
        run.model_at(len(run.snapshot_steps))
    with pytest.raises(ValueError, match="vector"):
        first.load_flat_parameters(torch.zeros(3))


def test_curriculum_optimizer_reset_gives_a_fresh_adam_step_at_the_boundary(tmp_path):
    stages = ((1, 10), (2, 10))
    cfgs = {reset: replace(TINY, train=replace(TINY.train, schedule="curriculum",
                                               curriculum=stages, n_steps=20,
                                               reset_optimizer=reset, weight_decay=0.0))
            for reset in (True, False)}
    logs = {reset: train(cfg, tmp_path / str(reset)) for reset, cfg in cfgs.items()}
    # identical through stage 1 (and the loss at step 10, measured before the boundary update)
    np.testing.assert_array_equal(logs[True]["train_loss"][:11], logs[False]["train_loss"][:11])
    assert not np.array_equal(logs[True]["train_loss"][11:], logs[False]["train_loss"][11:])
    lr = lr_at_step(cfgs[True].train, 10)
    # a fresh Adam's first step moves every coordinate with |g| >> eps by lr (m̂/√v̂ = sign g)
    fresh = np.abs(np.load(tmp_path / "True" / "updates.npy")[1])
    moved = fresh[fresh > 1e-3 * lr]
    assert len(moved) > 0.3 * len(fresh)    # the rest: embeddings of tokens absent from the batch
    assert np.mean(np.abs(moved - lr) < 1e-3 * lr) > 0.95   # the rest: |g| not >> eps
    assert moved.max() < lr * (1 + 1e-4)
    carried = np.abs(np.load(tmp_path / "False" / "updates.npy")[1])
    assert np.abs(carried[fresh > 1e-3 * lr] - lr).max() > 0.1 * lr


DENSE = replace(TINY, train=replace(TINY.train, n_steps=40, snapshot_every=10, dense_every=2,
                                    dense_until=9))


def test_dense_early_schedule_steps_and_validation():
    from modadd.train import regular_steps
    steps = snapshot_steps(DENSE)
    assert steps.tolist() == [0, 2, 4, 6, 8, 10, 20, 30, 40]
    assert steps[regular_steps(DENSE)].tolist() == snapshot_steps(TINY).tolist()
    # the default enters no key: the regular schedule keeps its key; the dense one gets another
    assert replace(TINY.train, dense_every=0, dense_until=0) == TINY.train
    assert DENSE.key(1) != TINY.key(1)
    with pytest.raises(ValueError, match="dense_every, dense_until: set both"):
        TrainConfig(dense_every=10)
    with pytest.raises(ValueError, match=r"dense_until: must be in \[0, n_steps=100\]"):
        TrainConfig(n_steps=100, dense_every=10, dense_until=200)


def test_dense_snapshots_change_measurement_not_training(tmp_path):
    regular = train(TINY, tmp_path / "regular")
    dense = train(DENSE, tmp_path / "dense")
    np.testing.assert_array_equal(regular["train_loss"], dense["train_loss"])
    np.testing.assert_array_equal(regular["grad_norm"], dense["grad_norm"])
    snaps = np.load(tmp_path / "dense" / "snapshots.npy")
    from modadd.train import regular_steps
    np.testing.assert_array_equal(snaps[regular_steps(DENSE)],
                                  np.load(tmp_path / "regular" / "snapshots.npy"))
    steps = sorted({r["step"] for r in dense["metrics"]})
    assert steps == snapshot_steps(DENSE).tolist()


def test_dense_schedule_resumes_bit_identically(tmp_path):
    whole = train(DENSE, tmp_path / "whole")
    train(DENSE, tmp_path / "parts", stop_after=7)
    resumed = train(DENSE, tmp_path / "parts")
    assert_runs_equal(tmp_path / "whole", whole, tmp_path / "parts", resumed)


def test_float64_loss_is_the_float64_log_softmax_and_the_default_float32():
    from modadd.train import training_loss
    logits = torch.tensor([[30.0, 0.0, -5.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0, 2])
    cfg = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                    model=ModelConfig(n_layers=1, d_model=32, n_heads=2),
                    train=TrainConfig(loss_dtype="float64"))
    # by hand: -mean(z_y - logsumexp(z)) in float64
    z = logits.double().numpy()
    by_hand = -np.mean([z[i, y] - np.log(np.exp(z[i]).sum()) for i, y in enumerate([0, 2])])
    out = training_loss(cfg, logits, labels)
    assert out.dtype == torch.float64 and float(out) == pytest.approx(by_hand, rel=1e-14)
    out32 = training_loss(replace(cfg, train=TrainConfig()), logits, labels)
    assert out32.dtype == torch.float32
    with pytest.raises(ValueError, match="loss_dtype: must be one of"):
        TrainConfig(loss_dtype="float16").check_optimizer()


def test_eos_target_loss_is_the_mean_over_the_answer_and_the_end_token():
    """openai/grok's loss over ``c <eos>``: the answer appended to the input, the outputs at
    ``=`` and at the answer scored against the answer and the end token, the mean over both,
    against a by-hand log-softmax of ``sequence_logits`` in float64."""
    from modadd.algorithmic import AlgorithmicTask
    from modadd.model import Transformer
    from modadd.train import training_logits, training_loss, training_targets
    task = AlgorithmicTask(p=7, train_fraction=0.5, start_token=True, readout_all_tokens=True,
                           eos_target=True)
    cfg = RunConfig(task=task, model=ModelConfig(n_layers=1, d_model=16, n_heads=2),
                    train=TrainConfig(batch_size=4))
    torch.manual_seed(0)
    model = Transformer.for_task(cfg.model, task)
    tokens, labels = task.split_data()["train"]
    tokens, labels = tokens[:4], labels[:4]
    logits = training_logits(cfg, model, tokens, labels)
    targets = training_targets(cfg, labels)
    assert logits.shape == (4, 2, task.vocab_size)
    np.testing.assert_array_equal(targets[:, 1].numpy(), [task.end_token] * 4)
    full = model.sequence_logits(torch.cat([tokens, labels[:, None]], dim=1)).double()
    z = full.detach().numpy()
    by_hand = -np.mean([z[i, t, y] - np.log(np.exp(z[i, t]).sum())
                        for i in range(4) for t, y in ((4, int(labels[i])),
                                                       (5, task.end_token))])
    assert float(training_loss(cfg, logits, targets).detach()) == pytest.approx(by_hand, rel=1e-6)
    # the output at '=' is the readout the evaluation reads (causal model)
    torch.testing.assert_close(logits[:, 0], model(tokens), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="labels: eos_target appends the answers"):
        training_logits(cfg, model, tokens)
    with pytest.raises(ValueError, match="eos_target: scores two positions"):
        RunConfig(task=task, model=cfg.model, train=TrainConfig(lean_step=True))
