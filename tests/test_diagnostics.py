"""Diagnostics recorded during training: gradient norms against a manual autograd computation,
update ratios, activation statistics, readout attention; schedules that really reach the
optimizer; the operand-size curriculum; recording that does not change training."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from modadd.algorithmic import AlgorithmicTask
from modadd.config import RunConfig, TrainConfig
from modadd.diagnostics import Diagnostics
from modadd.model import ModelConfig, build_model
from modadd.taskdata import AlgorithmicData
from modadd.train import train, train_step
from modadd.schedules import PlateauTracker, lr_at_step, operand_fraction_at_step, wd_at_step


def _cfg(**changes) -> RunConfig:
    return RunConfig(task=AlgorithmicTask(p=11, train_fraction=0.5, split_seed=1),
                     model=ModelConfig(n_layers=2, d_model=16, n_heads=2, attention_only=False,
                                       activation="relu"),
                     train=replace(TrainConfig(lr=1e-2, weight_decay=0.5, batch_size=16,
                                               n_steps=20, snapshot_every=5, probe_size=12,
                                               checkpoint_every=5), **changes), seed=2)


def test_gradient_norms_match_manual_autograd_and_update_ratios_match_sgd():
    cfg = _cfg(optimizer="sgd", weight_decay=0.0)
    model = build_model(cfg.model, cfg.task, 0)
    reference = copy.deepcopy(model)
    data = AlgorithmicData(cfg)
    batch = data.batch(16, torch.Generator().manual_seed(0))
    # manual: autograd.grad on an untouched copy
    loss = F.cross_entropy(reference(batch.tokens), batch.labels)
    names = [n for n, _ in reference.named_parameters()]
    grads = torch.autograd.grad(loss, list(reference.parameters()), allow_unused=True)
    manual = {n: 0.0 if g is None else float(g.norm()) for n, g in zip(names, grads)}
    params = {n: float(p.detach().norm()) for n, p in reference.named_parameters()}
    rows = []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_step(cfg, model, optimizer, batch, Diagnostics(model, data.probes["heldout"].tokens), 7,
          rows)
    table = pd.DataFrame(rows)
    assert set(table.step) == {7}
    got = table[table.metric == "grad_norm"].set_index("name").value
    for name in names:
        assert got[name] == pytest.approx(manual[name], rel=1e-5, abs=1e-7), name
    ratio = table[table.metric == "update_ratio"].set_index("name").value
    for name in names:
        if params[name] > 0:
            assert ratio[name] == pytest.approx(0.1 * manual[name] / params[name],
                                                rel=1e-4, abs=1e-7), name
    weight_sq = table[table.metric == "weight_sq"].value.iloc[0]
    assert weight_sq == pytest.approx(sum(float((p.double() ** 2).sum())
                                          for p in reference.parameters()), rel=1e-9)
    layer_of = table[table.metric == "grad_norm"].set_index("name").layer
    assert layer_of["blocks.1.attn.qkv.weight"] == 1 and layer_of["embed.weight"] == -1


def test_activation_statistics_and_readout_attention_by_hand():
    cfg = _cfg()
    model = build_model(cfg.model, cfg.task, 0)
    tokens = AlgorithmicData(cfg).probes["heldout"].tokens
    rows = pd.DataFrame(Diagnostics(model, tokens).activations(3))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        hidden = F.relu(model.blocks[0].mlp[0](model.blocks[0].ln_mlp(
            cache["resid"][0] + model.blocks[0].attn(model.blocks[0].ln_attn(
                cache["resid"][0]))[0])))
    act = rows[rows.metric == "activation"].set_index(["layer", "name"]).value
    final = cache["resid"][2].double()
    assert act[(-1, "resid_final:norm")] == pytest.approx(float(final.norm(dim=-1).mean()))
    assert act[(1, "resid_pre:std")] == pytest.approx(float(cache["resid"][1].double().std()))
    assert act[(0, "mlp_hidden:sparsity")] == pytest.approx(float((hidden == 0).double().mean()))
    assert 0 < act[(0, "mlp_hidden:sparsity")] < 1
    attn = rows[rows.metric == "attn_readout"]
    sums = attn.assign(head=attn.name.str.split(":").str[0]).groupby(["layer", "head"]).value.sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-9)
    expected = cache["attn"][1][:, 0, -1, 2].double().mean()
    got = attn[(attn.layer == 1) & (attn.name == "h0:k2")].value.iloc[0]
    assert got == pytest.approx(float(expected))
    # entropy per head: numpy over the readout rows, averaged over the batch (not the entropy
    # of the averaged row, which is larger by Jensen)
    entropy = rows[rows.metric == "attn_entropy"].set_index(["layer", "name"]).value
    assert len(entropy) == cfg.model.n_layers * cfg.model.n_heads
    row = cache["attn"][1][:, 1, -1].double().numpy()
    by_hand = float(np.mean(-(row * np.log(row)).sum(axis=1)))
    assert entropy[(1, "h1")] == pytest.approx(by_hand, rel=1e-9)
    mean_row = row.mean(axis=0)
    assert by_hand < float(-(mean_row * np.log(mean_row)).sum())


def test_diagnostics_do_not_change_training(tmp_path):
    plain = train(_cfg(), tmp_path / "a")
    watched = train(_cfg(diagnostics_every=4), tmp_path / "b")
    np.testing.assert_array_equal(plain["train_loss"], watched["train_loss"])
    rows = pd.DataFrame(watched["metrics"])
    assert sorted(rows[rows.metric == "grad_norm"].step.unique()) == [0, 4, 8, 12, 16]


def _optimizer_groups(cfg, tmp_path, stop_after):
    train(cfg, tmp_path, stop_after=stop_after)
    return torch.load(tmp_path / "checkpoint.pt", weights_only=False)["optimizer"]["param_groups"]


def test_schedules_reach_the_optimizer(tmp_path):
    cfg = _cfg(wd_schedule="linear", wd_final_ratio=5.0, wd_ramp_steps=10,
               lr_schedule="cyclic", cycle_steps=8, lr_final_ratio=0.1)
    group = _optimizer_groups(cfg, tmp_path / "a", stop_after=6)[0]
    # the update of step 5 was taken with these (the checkpoint holds the last ones set)
    assert group["weight_decay"] == pytest.approx(0.5 * (1 + 4 * 5 / 10))
    assert group["lr"] == pytest.approx(lr_at_step(cfg.train, 5))
    t = cfg.train
    assert lr_at_step(t, 0) == pytest.approx(1e-3) and lr_at_step(t, 4) == pytest.approx(1e-2)
    assert lr_at_step(t, 2) == pytest.approx(1e-3 + 0.5 * 9e-3) and lr_at_step(t, 8) == \
        pytest.approx(1e-3)
    assert wd_at_step(t, 10) == wd_at_step(t, 15) == pytest.approx(2.5)
    # and they change training
    plain = train(_cfg(), tmp_path / "b")
    scheduled = train(cfg, tmp_path / "c")
    assert not np.array_equal(plain["train_loss"][5:], scheduled["train_loss"][5:])


def test_plateau_cuts_the_learning_rate():
    tracker = PlateauTracker(TrainConfig(lr_schedule="plateau", plateau_patience=3,
                                         plateau_factor=0.5, lr_final_ratio=0.2))
    for loss in [1.0, 0.9, 0.9, 0.9, 0.9]:
        tracker.update(loss)
    assert tracker.scale == 1.0           # 3 bad steps: not more than the patience yet
    tracker.update(0.9)
    assert tracker.scale == 0.5
    for _ in range(8):
        tracker.update(0.9)
    assert tracker.scale == pytest.approx(0.2)   # floored at lr_final_ratio


def test_plateau_schedule_in_training(tmp_path):
    cfg = _cfg(lr_schedule="plateau", plateau_patience=1, plateau_factor=0.5, lr=0.5)
    group = _optimizer_groups(cfg, tmp_path, stop_after=20)[0]
    assert group["lr"] < 0.5


def test_operand_curriculum_restricts_the_batches():
    cfg = _cfg(operand_curriculum=((0.3, 5), (0.6, 10)))
    data = AlgorithmicData(cfg)
    g = torch.Generator().manual_seed(0)
    for step, limit in ((0, 0.3), (7, 0.6), (12, 1.0)):
        batch = data.training_batch(step, g)
        size = (batch.tokens[:, 0] + batch.tokens[:, 2]).double() / 20
        assert float(size.max()) <= limit + 1e-12
    assert operand_fraction_at_step(cfg.train, 4) == 0.3
    assert operand_fraction_at_step(cfg.train, 10) == 1.0
    with pytest.raises(ValueError, match="operand_curriculum"):
        TrainConfig(operand_curriculum=((0.5, 10), (0.6, 5)))


def test_shuffled_epochs_cover_the_split_once_per_epoch():
    """openai/grok's sampling: each epoch is a permutation of the training split in consecutive
    batches, the last one ragged; a fresh permutation per epoch; batches a function of the step
    (a new data object, as after a resume, draws the same ones); another seed, other epochs."""
    cfg = _cfg(sampling="epochs", batch_size=16)
    data = AlgorithmicData(cfg)
    tokens, _ = data.splits["train"]
    n = len(tokens)
    per_epoch = -(-n // 16)
    g = torch.Generator().manual_seed(0)
    epochs = []
    for epoch in range(2):
        batches = [data.training_batch(epoch * per_epoch + i, g) for i in range(per_epoch)]
        assert [len(b.labels) for b in batches] == [16] * (per_epoch - 1) + [n - 16 * (per_epoch - 1)]
        rows = torch.cat([b.tokens for b in batches])
        assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, tokens.tolist()))
        epochs.append(rows)
    assert not torch.equal(epochs[0], epochs[1])
    again = AlgorithmicData(cfg).training_batch(per_epoch + 2, g)
    torch.testing.assert_close(again.tokens, epochs[1][32:48])
    other = AlgorithmicData(replace(cfg, seed=1)).training_batch(0, g)
    assert not torch.equal(other.tokens, epochs[0][:16])


def test_sampling_is_validated():
    with pytest.raises(ValueError, match="sampling: must be one of"):
        TrainConfig(sampling="bootstrap")
    with pytest.raises(ValueError, match="sampling: 'epochs' cannot be combined"):
        TrainConfig(sampling="epochs", operand_curriculum=((0.5, 10),))
    with pytest.raises(ValueError, match="sampling: only supported for algorithmic tasks"):
        RunConfig(train=TrainConfig(sampling="epochs"))
