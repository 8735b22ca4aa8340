"""Training data: folders, CSVs and CSBDeep .npz files; every bad input is one clear UserError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from gvtnet_zoo.data.pairs import load_pairs, split_validation
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.spec_loading import load_spec

SPEC_2D = load_spec("demo-gvtnet-label-free-2d", ["data.patch_size=[32,32]"])


def _write_pairs(root: Path, names: list[str], shape: tuple[int, ...] = (40, 48), target_shape: tuple[int, ...] | None = None,
                 dtype: type = np.uint16) -> Path:
    rng = np.random.default_rng(0)
    for folder, size in (("source", shape), ("target", target_shape or shape)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            tifffile.imwrite(root / folder / f"{name}.tif", rng.integers(0, 1000, size=size).astype(dtype))
    return root


def _error(data: Path, spec=SPEC_2D) -> str:
    with pytest.raises(UserError) as err:
        load_pairs(data, spec)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_folder_pairs_by_name(tmp_path: Path) -> None:
    data = load_pairs(_write_pairs(tmp_path, ["b", "a", "c"]), SPEC_2D)
    assert [p.name for p in data.pairs] == ["a", "b", "c"]
    assert data.pairs[0].source.dtype == np.float32 and data.pairs[0].source.shape == (40, 48)


def test_ome_tiff_and_float_images(tmp_path: Path) -> None:
    for folder in ("source", "target"):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "x.ome.tif", np.random.rand(40, 40).astype(np.float64), ome=True)
    assert load_pairs(tmp_path, SPEC_2D).pairs[0].name == "x"


def test_csv_pairs_relative_to_the_csv(tmp_path: Path) -> None:
    _write_pairs(tmp_path / "imgs", ["a", "b"])
    csv = tmp_path / "pairs.csv"
    csv.write_text("source,target\nimgs/source/a.tif,imgs/target/a.tif\nimgs/source/b.tif,imgs/target/b.tif\n")
    assert len(load_pairs(csv, SPEC_2D).pairs) == 2


def test_csbdeep_npz(tmp_path: Path) -> None:
    x = np.random.rand(5, 1, 16, 32, 32).astype(np.float32)
    np.savez(tmp_path / "data.npz", X=x, Y=x * 2, axes="SCZYX")
    spec = load_spec("demo-gvtnet-care-denoise-3d")
    data = load_pairs(tmp_path / "data.npz", spec)
    assert data.are_patches and len(data.pairs) == 5 and data.pairs[0].source.shape == (16, 32, 32)
    np.testing.assert_array_equal(data.pairs[3].target, x[3, 0] * 2)


def test_max_images_takes_the_first_by_name(tmp_path: Path) -> None:
    spec = load_spec("demo-gvtnet-label-free-2d", ["data.patch_size=[32,32]", "data.max_images=2"])
    assert [p.name for p in load_pairs(_write_pairs(tmp_path, ["c", "a", "b"]), spec).pairs] == ["a", "b"]


def test_missing_folder(tmp_path: Path) -> None:
    assert "not found" in _error(tmp_path / "nowhere")
    (tmp_path / "source").mkdir()
    assert "no target/ folder" in _error(tmp_path)


def test_no_pairs(tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()
    assert "no images" in _error(tmp_path)


def test_names_without_partner_are_listed(tmp_path: Path) -> None:
    _write_pairs(tmp_path, ["a", "b"])
    _write_pairs(tmp_path / "extra", ["c"])
    (tmp_path / "extra" / "source" / "c.tif").rename(tmp_path / "source" / "c.tif")
    (tmp_path / "target" / "a.tif").unlink()
    message = _error(tmp_path)
    assert "source/a" in message and "source/c" in message and "without a partner" in message


def test_shape_mismatch_names_the_pair(tmp_path: Path) -> None:
    message = _error(_write_pairs(tmp_path, ["a"], (40, 48), (40, 40)))
    assert ": a:" in message and "(40, 48)" in message and "(40, 40)" in message


def test_nan_is_refused(tmp_path: Path) -> None:
    _write_pairs(tmp_path, ["a"], dtype=np.float32)
    image = tifffile.imread(tmp_path / "target" / "a.tif")
    image[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "target" / "a.tif", image)
    assert "NaN or Inf" in _error(tmp_path)


def test_image_smaller_than_the_patch(tmp_path: Path) -> None:
    assert "smaller than the patch [32, 32]" in _error(_write_pairs(tmp_path, ["a"], (20, 48)))


def test_dimensionality_must_match_the_spec(tmp_path: Path) -> None:
    message = _error(_write_pairs(tmp_path, ["a"], (8, 40, 48)))
    assert "3 axes" in message and "2D" in message


def test_unreadable_file(tmp_path: Path) -> None:
    _write_pairs(tmp_path, ["a"])
    (tmp_path / "source" / "a.tif").write_bytes(b"not a tiff")
    assert "cannot read image" in _error(tmp_path) and "a.tif" in _error(tmp_path)


def test_validation_split_never_overlaps(tmp_path: Path) -> None:
    data = load_pairs(_write_pairs(tmp_path, [f"i{k}" for k in range(10)]), SPEC_2D)
    train, val = split_validation(data, 0.2)
    assert [p.name for p in val] == ["i8", "i9"] and len(train) == 8
    assert not {p.name for p in train} & {p.name for p in val}
    with pytest.raises(UserError, match="--val"):
        split_validation(load_pairs(_write_pairs(tmp_path / "one", ["a"]), SPEC_2D), 0.2)


def test_resample_yx_resizes_both_images_in_y_and_x_as_read(tmp_path: Path) -> None:
    """The label-free recipe: images resized by data.resample_yx (cubic spline) before anything else sees them."""
    from scipy import ndimage

    data = load_pairs(_write_pairs(tmp_path, ["a"], shape=(80, 96)), load_spec("demo-gvtnet-label-free-2d", [
        "data.patch_size=[32,32]", "data.resample_yx=0.5"]))
    pair = data.pairs[0]
    assert pair.source.shape == pair.target.shape == (40, 48)
    raw = tifffile.imread(tmp_path / "source" / "a.tif").astype(np.float32)
    np.testing.assert_allclose(pair.source, ndimage.zoom(raw, 0.5, order=3, mode="nearest"), rtol=1e-5)
    lazy = tmp_path / "lazy"
    (lazy / "source").mkdir(parents=True)
    (lazy / "target").mkdir()
    import zarr

    for folder in ("source", "target"):
        zarr.create_array(str(lazy / folder / "v.zarr"), shape=(64, 64), dtype="float32")[:] = 1.0
    message = _error(lazy, load_spec("demo-gvtnet-label-free-2d", ["data.patch_size=[32,32]", "data.resample_yx=0.5"]))
    assert "resample_yx" in message and "Zarr" in message
