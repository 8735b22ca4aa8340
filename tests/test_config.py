"""Spec files: unknown keys, overrides, cross-section checks, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gvtnet_zoo.config import Spec
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.spec_loading import apply_overrides, dump_spec, load_spec, parse_override, spec_from_mapping


def _error(raw: object, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(UserError) as err:
        spec_from_mapping(raw, "spec.yaml", overrides)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_unknown_key_names_the_key_and_the_allowed_ones() -> None:
    message = _error({"name": "x", "train": {"step": 10}})
    assert "unknown key 'train.step'" in message
    assert "steps" in message and "lr" in message


def test_unknown_key_inside_a_nested_architecture() -> None:
    raw = {"name": "x", "model": {"architecture": "gvtnet_projection", "network": {"dept": 3}},
           "data": {"patch_size": [8, 64, 64]}}
    message = _error(raw)
    assert "unknown key 'model.network.dept'" in message and "depth" in message


def test_unknown_architecture_lists_the_known_ones() -> None:
    message = _error({"name": "x", "model": {"architecture": "resnet"}})
    assert "'resnet' is not known" in message and "unet_fnet" in message


def test_missing_name() -> None:
    assert "missing key 'name'" in _error({"model": {}})


def test_patch_size_must_fit_the_network() -> None:
    message = _error({"name": "x", "data": {"patch_size": [30, 64, 64]}})
    assert "[30, 64, 64]" in message and "[8, 8, 8]" in message
    assert "2D input" in _error({"name": "x", "model": {"spatial_dims": 2}})


def test_laplace_loss_needs_a_scale_head() -> None:
    assert "sigma_head: true" in _error({"name": "x", "train": {"loss": "laplace_nll"}})


def test_overrides_are_parsed_as_yaml() -> None:
    assert parse_override("data.patch_size=[16,32,32]") == (["data", "patch_size"], [16, 32, 32])
    assert parse_override("train.lr=0.0004") == (["train", "lr"], 4e-4)
    # PyYAML reads 4e-4 as a string (YAML 1.1); the spec still takes it as the number
    assert spec_from_mapping(apply_overrides({"name": "x"}, ["train.lr=4e-4"])).train.lr == 4e-4
    raw = apply_overrides({"name": "x"}, ["model.depth=3", "model.encoder_blocks=[1,0,0]", "data.patch_size=[8,16,16]"])
    spec = spec_from_mapping(raw)
    assert spec.model.depth == 3 and spec.data.patch_size == [8, 16, 16]


@pytest.mark.parametrize("bad", ["lr=3", "train.lr", "train..lr=1", "train.lr=[1,"])
def test_malformed_overrides_are_user_errors(bad: str) -> None:
    with pytest.raises(UserError, match="--set"):
        apply_overrides({"name": "x"}, [bad])


def test_override_into_a_value_is_refused() -> None:
    with pytest.raises(UserError, match="holds a value"):
        apply_overrides({"name": "x"}, ["name.first=1"])


def test_bad_values_name_their_key() -> None:
    assert "train.lr" in _error({"name": "x", "train": {"lr": -1}})
    assert "model: encoder_blocks needs one entry per level" in _error({"name": "x", "model": {"encoder_blocks": [1, 0]}})


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodel:\n  depth: [3\n")
    with pytest.raises(UserError, match="line"):
        load_spec(path)


def test_shipped_spec_by_name_and_resolved_dump_round_trip(tmp_path: Path) -> None:
    spec = load_spec("gvtnet-care-denoise")
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_spec(spec))
    assert load_spec(path) == spec


def test_configs_are_immutable() -> None:
    spec = Spec(name="x")
    with pytest.raises(Exception):
        spec.train.lr = 1.0  # type: ignore[misc]


def test_yaml_off_means_amp_off() -> None:
    assert spec_from_mapping(apply_overrides({"name": "x"}, ["train.amp=off"])).train.amp == "off"
    assert spec_from_mapping(apply_overrides({"name": "x"}, ["train.amp=bf16"])).train.amp == "bf16"


def test_the_demo_care_paper_spec_is_the_papers_network_at_demo_width() -> None:
    """Issue 35's opt-in remedy: the paper's CARE GVTNet (no batch norm) with the demo's data settings
    (benchmarks/context_probes.py's CARE_DEMO_WIDTH, which the measurements used), nothing else."""
    import ast
    from pathlib import Path

    from gvtnet_zoo.spec_loading import load_spec

    tree = ast.parse((Path(__file__).resolve().parents[1] / "benchmarks" / "context_probes.py").read_text())
    overrides = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                     and any(getattr(t, "id", "") == "CARE_DEMO_WIDTH" for t in node.targets))
    paper, demo = load_spec("gvtnet-care-denoise", overrides=overrides), load_spec("demo-gvtnet-care-paper-3d")
    assert paper.model == demo.model and paper.data == demo.data and not demo.model.batch_norm
