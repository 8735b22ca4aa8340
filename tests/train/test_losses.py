"""The losses are the paper's formulas."""

from __future__ import annotations

import torch

from gvtnet_zoo.train.losses import compute_loss, laplace_nll


def test_laplace_negative_log_likelihood() -> None:
    mean, scale, target = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.0]), torch.tensor([2.0, 2.0])
    expected = ((1.0 / 0.5 + torch.log(torch.tensor(0.5))) + (0.0 + torch.log(torch.tensor(2.0)))) / 2
    torch.testing.assert_close(laplace_nll(mean, scale, target), expected)


def test_mse_and_mae() -> None:
    a, b = torch.tensor([0.0, 3.0]), torch.tensor([1.0, 1.0])
    assert float(compute_loss("mse", a, b)) == 2.5
    assert float(compute_loss("mae", a, b)) == 1.5
    assert float(compute_loss("laplace_nll", (a, torch.ones(2)), b)) == 1.5
