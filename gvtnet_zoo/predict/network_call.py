"""The package's network on one (pre-processed) sample: a network that rejects its input is one line naming the
weights and the shapes, not a traceback from onnxruntime, TorchScript or the package's code."""

from __future__ import annotations

from typing import Any

from ..errors import UserError


def run_network(pipeline: Any, sample: Any, weights: str) -> Any:
    """``pipeline``'s network on ``sample`` as it is (no processing, padding or cropping) -> the raw output sample."""
    try:
        return pipeline.predict_sample_without_blocking(sample, skip_preprocessing=True, skip_postprocessing=True,
                                                        skip_input_padding=True, skip_output_cropping=True)
    except (UserError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - every runtime has its own exception types
        shapes = ", ".join(f"{k} {dict(v.sizes)}" for k, v in sample.members.items())
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = lines[-1][:300] if lines else type(err).__name__  # TorchScript puts its own traceback first
        raise UserError(f"the {weights} weights failed on an input of {shapes}: {reason}; predict with other "
                        "--weight-format, other --tile sizes, or --whole") from None
