"""The optimizer the engine builds: fused AdamW where the device has the kernel, same maths."""

from __future__ import annotations

from dataclasses import replace

import torch

from wavtune.config import Config
from wavtune.train.engine import make_optimizer


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 3)
    )


def test_cpu_optimizer_is_fused_and_skips_decay_on_norms_and_biases() -> None:
    optimizer, _ = make_optimizer(_model(), Config().train, total_steps=10)
    assert optimizer.defaults["fused"] is True
    decay, no_decay = optimizer.param_groups
    assert all(p.ndim >= 2 for p in decay["params"]) and no_decay["weight_decay"] == 0.0
    assert all(p.ndim < 2 for p in no_decay["params"])


def test_fused_steps_match_the_reference_adamw() -> None:
    train = replace(Config().train, warmup_steps=0, weight_decay=0.1)
    fused_model, plain_model = _model(), _model()
    fused, _ = make_optimizer(fused_model, train, total_steps=10)
    lr = fused.param_groups[0]["lr"]
    assert lr > 0
    plain = torch.optim.AdamW(
        [{"params": [p for p in plain_model.parameters() if p.ndim >= 2], "weight_decay": 0.1},
         {"params": [p for p in plain_model.parameters() if p.ndim < 2], "weight_decay": 0.0}],
        lr=lr, betas=(train.adam_beta1, train.adam_beta2), eps=train.adam_epsilon, foreach=False,
    )
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    start = [p.detach().clone() for p in fused_model.parameters()]
    for _ in range(5):
        for model, opt in ((fused_model, fused), (plain_model, plain)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b, a0 in zip(fused_model.parameters(), plain_model.parameters(), start):
        assert not torch.equal(a, a0)  # it trained
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
