"""On a CUDA GPU, eager and TorchScript models give what the CPU gives (skipped where no GPU exists)."""

from __future__ import annotations

import pytest
import torch

from gvtnet_zoo import build_model, load_spec
from gvtnet_zoo.export import script_model

from ..conftest import PAPER_SPECS, valid_input

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def no_tf32() -> object:
    # TF32 convolutions round to 10 mantissa bits; compare full float32 arithmetic.
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("name", PAPER_SPECS)
def test_cuda_matches_cpu(name: str, no_tf32: object) -> None:
    model = build_model(load_spec(name)).eval()
    x = valid_input(name, (1, 2, 3), batch=2)
    with torch.no_grad():
        on_cpu = model(x)
        model = model.cuda()
        on_gpu = model(x.cuda()).cpu()
        scripted = script_model(model)(x.cuda()).cpu()
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scripted, on_cpu, atol=1e-4, rtol=1e-4)
