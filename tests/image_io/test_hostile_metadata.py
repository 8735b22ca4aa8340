"""Old, malformed and hostile metadata (issue 31, items 7, 10, 11): what is valid is read, NGFF 0.3 included;
what cannot be read is refused in one line naming the file and the field; voxel sizes that are not positive
finite numbers are dropped with one warning and never reach an output."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import tifffile
import torch
import zarr

from gvtnet_zoo.cli import main
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.image_io.volumes import MetadataWarning, open_volume

from ..predict.zoo_builders import single_io_package

Attrs = dict[str, Any]


def _ome_zarr(path: Path, zarr_format: int, edit: Callable[[Attrs], None] = lambda _: None) -> Path:
    """A two-level zyx image written with zarr's API (NGFF 0.4 on Zarr v2, 0.5 on v3), whose attributes ``edit``
    then changes in the metadata file itself, as another tool (or a hand) would have written them."""
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    data = np.arange(4 * 32 * 32, dtype=np.float32).reshape(4, 32, 32)
    group.create_array("0", data=data, chunks=(2, 16, 16))
    group.create_array("1", data=data[:, ::2, ::2], chunks=(2, 16, 16))
    entry = {"axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
             "datasets": [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5 * 2**i, 0.5 * 2**i]}]}
                          for i in range(2)]}
    meta = path / (".zattrs" if zarr_format == 2 else "zarr.json")
    stored = json.loads(meta.read_text()) if meta.exists() else {}
    attrs = stored.setdefault("attributes", {}) if zarr_format == 3 else stored
    if zarr_format == 3:
        attrs["ome"] = {"version": "0.5", "multiscales": [entry]}
    else:
        attrs["multiscales"] = [{"version": "0.4", **entry}]
    edit(attrs)
    meta.write_text(json.dumps(stored))  # json writes NaN as the NaN literal, as Python-based writers do
    return path


def _entry(attrs: Attrs) -> Attrs:
    return attrs["ome"]["multiscales"][0] if "ome" in attrs else attrs["multiscales"][0]


def _scale(attrs: Attrs, values: list[Any]) -> None:
    _entry(attrs)["datasets"][0]["coordinateTransformations"][0]["scale"] = values


HOSTILE: dict[str, tuple[Callable[[Attrs], None], str]] = {
    "scale shorter than the axes": (lambda a: _scale(a, [2.0, 0.5]), "datasets[0].coordinateTransformations[0].scale has 2"),
    "non-numeric scale": (lambda a: _scale(a, [2.0, "half", 0.5]), "scale holds 'half'"),
    "dataset without path": (lambda a: _entry(a)["datasets"][0].pop("path"), "datasets[0] has no \"path\""),
    "path to a missing array": (lambda a: _entry(a)["datasets"][0].update(path="7"), "datasets[0].path '7' is not an array"),
    "datasets as a dict": (lambda a: _entry(a).update(datasets={"0": {"path": "0"}}), "datasets is a dict"),
    "no datasets": (lambda a: _entry(a).pop("datasets"), "datasets is missing"),
    "axis neither name nor object": (lambda a: _entry(a)["axes"].__setitem__(0, 3), "axes[0] is 3"),
    "transformation not an object": (lambda a: _entry(a)["datasets"][0].update(coordinateTransformations=["scale"]),
                                     "coordinateTransformations[0] must be an object"),
    "multiscales not a list": (lambda a: a["ome"].update(multiscales={"0": 1}) if "ome" in a
                               else a.update(multiscales={"0": 1}), "multiscales must be a list"),
}


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_malformed_ome_zarr_metadata_is_refused_in_one_line_naming_file_and_field(tmp_path: Path, case: str,
                                                                                   zarr_format: int) -> None:
    edit, field = HOSTILE[case]
    path = _ome_zarr(tmp_path / "bad.ome.zarr", zarr_format, edit)
    with pytest.raises(UserError) as refused:
        open_volume(path)
    message = str(refused.value)
    assert "\n" not in message and field in message
    assert str(path / (".zattrs" if zarr_format == 2 else "zarr.json")) in message


def test_ngff_03_axes_given_as_letters_are_read(tmp_path: Path) -> None:
    """NGFF 0.3 gave axes as names (`["t", "c", "z", "y", "x"]`) and no transformations: valid, read as is."""
    def old(attrs: Attrs) -> None:
        attrs["multiscales"] = [{"version": "0.3", "axes": ["z", "y", "x"], "datasets": [{"path": "0"}, {"path": "1"}]}]

    source = open_volume(_ome_zarr(tmp_path / "v03.ome.zarr", 2, old), level=1)
    assert (source.axes, source.shape, source.dataset) == ("zyx", (4, 16, 16), "1")
    assert source.scales == {"z": 1.0, "y": 1.0, "x": 1.0}  # no transformations before 0.4: unknown, scale 1
    assert source.ngff_version == "0.3"


def test_ngff_02_without_axes_is_read_as_tczyx(tmp_path: Path) -> None:
    path = tmp_path / "v02.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=np.zeros((1, 1, 2, 8, 8), np.float32))
    group.attrs["multiscales"] = [{"version": "0.2", "datasets": [{"path": "0"}]}]
    assert open_volume(path).axes == "tczyx"


@pytest.mark.parametrize("level, expected", [(-1, "levels count from 0"), (2, "has 2 level(s), 0 to 1")])
def test_levels_below_zero_or_beyond_the_last_are_refused(tmp_path: Path, level: int, expected: str) -> None:
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        open_volume(_ome_zarr(tmp_path / "v.ome.zarr", 3), level=level)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_nan_zero_and_negative_ome_zarr_scales_are_dropped_with_one_warning(tmp_path: Path, zarr_format: int) -> None:
    def hostile(attrs: Attrs) -> None:
        _scale(attrs, [math.nan, 0.0, 0.5])
        _entry(attrs)["coordinateTransformations"] = [{"type": "scale", "scale": [1.0, 1.0, -2.0]},
                                                     {"type": "translation", "translation": [math.inf, 3.0, 0.0]}]

    with pytest.warns(MetadataWarning) as caught:
        source = open_volume(_ome_zarr(tmp_path / "v.ome.zarr", zarr_format, hostile))
    assert len(caught) == 2  # one for the sizes, one for the position
    assert "z (nan), y (0), x (-2)" in str(caught[0].message) and "treated as unknown (scale 1)" in str(caught[0].message)
    assert source.scales == {} and set(source.units) == set()
    assert source.translations == {"y": 3.0}


def _tiff(path: Path, kind: str) -> Path:
    """A yx OME-TIFF with a NaN and a negative size, or a zyx ImageJ TIFF with 0 pixels per unit in x (an
    infinite size) and a NaN or zero z spacing."""
    rng = np.random.default_rng(0)
    if kind == "ome":
        tifffile.imwrite(path, rng.normal(size=(32, 32)).astype(np.float32), ome=True,
                         metadata={"axes": "YX", "PhysicalSizeX": math.nan, "PhysicalSizeY": -0.5})
    else:
        resolution, spacing = ((0.0, 4.0), math.nan) if kind == "imagej" else ((2.0, 4.0), 0.0)
        tifffile.imwrite(path, rng.normal(size=(4, 32, 32)).astype(np.float32), imagej=True, resolution=resolution,
                         metadata={"axes": "ZYX", "spacing": spacing, "unit": "um"})
    return path


@pytest.mark.parametrize("kind, dropped, kept", [("ome", "axes y (-0.5), x (nan)", {}),
                                                 ("imagej", "axes x (inf), z (nan)", {"y": 0.25}),
                                                 ("imagej-zero-spacing", "axis z (0)", {"y": 0.25, "x": 0.5})])
def test_nan_zero_and_negative_tiff_sizes_are_dropped_with_one_warning(tmp_path: Path, kind: str, dropped: str,
                                                                         kept: dict[str, float]) -> None:
    with pytest.warns(MetadataWarning) as caught:
        source = open_volume(_tiff(tmp_path / "v.tif", kind))
    assert len(caught) == 1 and f"{dropped}; treated as unknown (scale 1)" in str(caught[0].message)
    assert source.scales == pytest.approx(kept) and set(source.units) == set(kept)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny yx convolution package of another tool's style: built in a second, no training."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1).eval()
    x = np.random.default_rng(1).normal(size=(1, 1, 32, 32)).astype(np.float32)
    return single_io_package(tmp_path_factory.mktemp("pkg"), net, x, size=(16, 8), name="tinyconv")


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gvtnet-zoo: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("case", ["scale shorter than the axes", "datasets as a dict", "path to a missing array"])
def test_predict_refuses_malformed_ome_zarr_in_one_line(package: Path, tmp_path: Path, case: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = _ome_zarr(tmp_path / "bad.ome.zarr", 3, HOSTILE[case][0])
    err = _one_line_exit_2(["predict", str(package), str(path), "--out", str(tmp_path / "out")], capsys)
    assert HOSTILE[case][1] in err and not (tmp_path / "out" / "bad.pred.ome.zarr").exists()


@pytest.mark.parametrize("level", ["-1", "2"])
def test_predict_refuses_a_level_below_zero_or_beyond_the_last(package: Path, tmp_path: Path, level: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = _ome_zarr(tmp_path / "v.ome.zarr", 3)
    err = _one_line_exit_2(["predict", str(package), str(path), "--out", str(tmp_path / "out"), "--level", level], capsys)
    assert f"--level {level}" in err


def test_streamed_prediction_of_a_tiff_with_bad_sizes_writes_only_positive_finite_scales(package: Path,
                                                                                         tmp_path: Path) -> None:
    path = _tiff(tmp_path / "v.ome.tif", "ome")
    with pytest.warns(MetadataWarning, match="axes y \\(-0.5\\), x \\(nan\\)"):
        assert main(["predict", str(package), str(path), "--out", str(tmp_path / "out"), "--out-format", "ome-zarr"]) == 0
    attrs = zarr.open_group(str(tmp_path / "out" / "v.pred.ome.zarr"), mode="r").attrs.asdict()
    entry = attrs["ome"]["multiscales"][0] if "ome" in attrs else attrs["multiscales"][0]
    scales = [t["scale"] for d in entry["datasets"] for t in d["coordinateTransformations"] if t["type"] == "scale"]
    assert scales and all(math.isfinite(v) and v > 0 for scale in scales for v in scale)
    assert all("unit" not in axis for axis in entry["axes"])


@pytest.mark.parametrize("unit", [["micrometer"], 5, {"name": "um"}])
def test_a_unit_that_is_not_a_name_is_dropped(tmp_path: Path, unit: Any) -> None:
    def odd(attrs: Attrs) -> None:
        _entry(attrs)["axes"][1]["unit"] = unit

    source = open_volume(_ome_zarr(tmp_path / "u.ome.zarr", 3, odd))
    assert source.units == {"z": "micrometer", "x": "micrometer"}


def test_an_axis_named_twice_is_named_as_such(tmp_path: Path) -> None:
    def twice(attrs: Attrs) -> None:
        _entry(attrs)["axes"][2]["name"] = "y"

    with pytest.raises(UserError, match="axis 'y' \\(space\\) appears twice"):
        open_volume(_ome_zarr(tmp_path / "d.ome.zarr", 3, twice))
