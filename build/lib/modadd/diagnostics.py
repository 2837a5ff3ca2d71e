"""Training diagnostics recorded every ``diagnostics_every`` steps into the run's tidy metrics
table (rows ``step, m=0, metric, layer, name, value``):

- ``grad_norm``    per parameter tensor (``name``), taken after ``backward`` and **before** the
                   optimizer step (seed 002 read them after ``zero_grad``: always empty);
- ``param_norm``   per tensor, before the step;
- ``update_ratio`` per tensor, ``‖θ_after − θ_before‖ / ‖θ_before‖`` of that step's update;
- ``weight_sq``    Σ w² over every parameter (layer -1, name "");
- activation statistics on a fixed probe batch at each hook point (``name`` = point:stat, stat ∈
  mean, std, sparsity (share of entries with |x| ≤ 1e-6), norm (mean L2 norm of a position's
  vector)): ``resid_pre`` (block input), ``attn_out``, ``mlp_hidden`` (after the non-linearity),
  ``mlp_out`` per block and ``resid_final``;
- ``attn_readout`` the mean attention of the readout query per head and key position (``name`` =
  ``h<head>:k<key>``);
- ``attn_entropy`` the entropy (nats) of the readout query's attention row per head (``name`` =
  ``h<head>``), averaged over the probe batch (not the entropy of the averaged row).

The step at which a row is recorded is the step *before* the update it describes, so the grads of
step ``s`` belong with the weights of snapshot ``s``.  Recording reads only the model and a fixed
probe batch, under ``no_grad``, and draws no random numbers: a run trains identically with and
without it (tested).
"""
from __future__ import annotations

import re
from typing import Optional

import torch

from .model import readout_entropy

SPARSITY_EPS = 1e-6


def _layer_of(name: str) -> int:
    match = re.match(r"blocks\.(\d+)\.", name)
    return int(match.group(1)) if match else -1


class Diagnostics:
    """Collects the rows of one diagnostic record; ``before_step`` after ``backward``,
    ``after_step`` after ``optimizer.step``, then ``activations`` on the probe batch."""

    def __init__(self, model: torch.nn.Module, probe_tokens: torch.Tensor):
        self.model, self.probe_tokens = model, probe_tokens
        self._before: dict[str, torch.Tensor] = {}

    def before_step(self, step: int) -> list[dict]:
        rows = []
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                layer = _layer_of(name)
                grad = 0.0 if p.grad is None else float(torch.linalg.vector_norm(p.grad))
                norm = float(torch.linalg.vector_norm(p))
                rows.append(_row(step, "grad_norm", layer, name, grad))
                rows.append(_row(step, "param_norm", layer, name, norm))
                self._before[name] = p.detach().clone()
            rows.append(_row(step, "weight_sq", -1, "", self.model.weight_sq()))
        return rows

    def after_step(self, step: int) -> list[dict]:
        rows = []
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                before = self._before.pop(name)
                denominator = float(torch.linalg.vector_norm(before))
                change = float(torch.linalg.vector_norm(p.detach() - before))
                rows.append(_row(step, "update_ratio", _layer_of(name), name,
                                 change / denominator if denominator > 0 else float("nan")))
        return rows

    @torch.no_grad()
    def activations(self, step: int) -> list[dict]:
        model = self.model
        was_training = model.training
        model.eval()
        captured: dict[tuple[int, str], torch.Tensor] = {}
        handles = []
        for index, block in enumerate(model.blocks):
            handles.append(block.attn.register_forward_hook(
                lambda _m, _i, out, i=index: captured.__setitem__((i, "attn_out"), out[0])))
            if block.mlp is not None:
                handles.append(block.mlp[1].register_forward_hook(
                    lambda _m, _i, out, i=index: captured.__setitem__((i, "mlp_hidden"), out)))
                handles.append(block.mlp.register_forward_hook(
                    lambda _m, _i, out, i=index: captured.__setitem__((i, "mlp_out"), out)))
        try:
            _, cache = model.run_with_cache(self.probe_tokens)
        finally:
            for handle in handles:
                handle.remove()
        n_layers = len(model.blocks)
        for layer in range(n_layers):
            captured[(layer, "resid_pre")] = cache["resid"][layer]
        captured[(-1, "resid_final")] = cache["resid"][n_layers]
        rows = []
        for (layer, point), x in sorted(captured.items()):
            x = x.double()
            rows += [_row(step, "activation", layer, f"{point}:mean", float(x.mean())),
                     _row(step, "activation", layer, f"{point}:std", float(x.std())),
                     _row(step, "activation", layer, f"{point}:sparsity",
                          float((x.abs() <= SPARSITY_EPS).double().mean())),
                     _row(step, "activation", layer, f"{point}:norm",
                          float(torch.linalg.vector_norm(x, dim=-1).mean()))]
        for layer, attn in enumerate(cache["attn"]):
            readout = attn[:, :, -1].double().mean(dim=0)          # [H, T]
            for head in range(readout.shape[0]):
                for key in range(readout.shape[1]):
                    rows.append(_row(step, "attn_readout", layer, f"h{head}:k{key}",
                                     float(readout[head, key])))
            entropy = readout_entropy(attn.double()).mean(dim=0)    # [H]
            for head in range(entropy.shape[0]):
                rows.append(_row(step, "attn_entropy", layer, f"h{head}", float(entropy[head])))
        model.train(was_training)
        return rows


def _row(step: int, metric: str, layer: int, name: str, value: float) -> dict:
    return {"step": step, "m": 0, "metric": metric, "layer": layer, "name": name, "value": value}


def diagnostics_table(metrics, metric: str, name: Optional[str] = None):
    """Rows of one diagnostic ``metric`` (optionally one ``name``) from a run's metrics table."""
    rows = metrics[metrics.metric == metric]
    return rows if name is None else rows[rows["name"] == name]
