"""Issue 33, a newcomer's remaining items: imported models' cards, what --sample must be, --set's keys,
deepImageJ's engine, when OME-Zarr outputs get a pyramid, and what the training sample PNGs show."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from gvtnet_zoo.cli import build_parser, main
from gvtnet_zoo.config import Provenance
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.export.model_card import TRAINED_LIMITATIONS, origin_texts, paper_data, smallest_input
from gvtnet_zoo.export.publish import DEEPIMAGEJ_ENGINES, partner_checks, upload_checks
from gvtnet_zoo.export.zoo_test import FormatResult
from gvtnet_zoo.image_io.ome_zarr_out import OutputImage, pyramid_shapes
from gvtnet_zoo.models.halo import spec_halo
from gvtnet_zoo.spec_loading import load_spec, parse_override, spec_from_mapping
from gvtnet_zoo.train import observe
from gvtnet_zoo.trust import read_description

ROOT = Path(__file__).resolve().parents[1]
CARE = ROOT / "tests" / "tf_import" / "fixtures" / "care" / "model.ckpt-1"
CARE_ARGS = ["--spec", "gvtnet-care-denoise", "--set", "model.base_channels=4"]


def _readme() -> str:
    return " ".join((ROOT / "README.md").read_text().split())  # line breaks as spaces


def _noisy(path: Path, shape: tuple[int, ...]) -> Path:
    tifffile.imwrite(path, np.random.default_rng(1).gamma(2.0, 10.0, shape).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def imported_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's CARE Planaria import (the reduced-width fixture checkpoint), packaged."""
    root = tmp_path_factory.mktemp("imported")
    assert main(["import-tf", str(CARE), *CARE_ARGS, "--set", "name=gvtnet-care-planaria", "--out", str(root / "run"),
                 "--sample", str(_noisy(root / "NOISY_planaria.tif", (8, 64, 64)))]) == 0
    assert main(["package", str(root / "run"), "--out", str(root / "x.zip"), "--weight-formats", "torchscript"]) == 0
    return root / "x.zip"


# 1. the card of an imported published model

def test_an_imported_models_card_credits_the_authors_and_the_papers_validation(imported_package: Path) -> None:
    card = zipfile.ZipFile(imported_package).read("README.md").decode()
    flat = " ".join(card.split())
    assert "trained by the GVTNets authors (Wang, Xie & Ji 2021)" in flat
    assert "CARE's Planaria (Schmidtea mediterranea) denoising data" in flat
    assert "No validation was run by gvtnet-zoo" in flat and "Wang, Xie & Ji 2021, Fig. 3" in flat
    digest = hashlib.sha256(Path(f"{CARE}.index").read_bytes()).hexdigest()
    assert f"model.ckpt-1.index sha256 {digest}" in flat  # the checkpoint and its digest
    # what a trained run's card says would be false here
    assert "Trained on the data described above only" not in flat and "No validation was recorded" not in flat
    assert "trained with gvtnet-zoo for" not in flat
    checks = upload_checks(imported_package, read_description(imported_package), [FormatResult("torchscript", True)], None)
    assert {c.name: c.status for c in checks}["model card ## Validation"] == "pass"


def _imported(spec_name: str, name: str, where: str = "x/y/models/m/model.ckpt-pretrained", *overrides: str) -> Any:
    spec = load_spec(spec_name, [f"name={name}", *overrides])
    return spec.model_copy(update={"provenance": Provenance(imported_from=f"{where} (model.ckpt.index sha256 ab12)")})


def test_the_papers_data_as_far_as_the_name_or_the_checkpoint_path_tells() -> None:
    assert "Tribolium castaneum" in paper_data(_imported("gvtnet-care-denoise", "gvtnet-care-tribolium"))
    planaria = _imported("gvtnet-care-denoise", "my-model", "care_denoising/planaria/models/gvtnet_care_pretrained/m")
    assert "Planaria" in paper_data(planaria)
    assert "the name does not say which" in paper_data(_imported("gvtnet-care-denoise", "gvtnet-care"))
    assert "structure `dic_lamin_b1`" in paper_data(_imported("gvtnet-label-free", "gvtnet-label-free-dic_lamin_b1"))
    assert "structure `lamin_b1`" in paper_data(_imported("gvtnet-label-free", "gvtnet-label-free-lamin-b1"))
    dna = _imported("gvtnet-label-free", "gvtnet-label-free", "label-free/dna/models/gvtnet_label-free_pretrained/m")
    assert "Allen Institute" in paper_data(dna) and "structure `dna`" in paper_data(dna)
    assert "Flywing" in paper_data(_imported("gvtnet-flywing-projection", "gvtnet-flywing"))
    texts = origin_texts(_imported("gvtnet-flywing-projection", "gvtnet-flywing"), Path("/nonexistent/metrics.csv"))
    assert "Fig. 4" in texts["validation_text"]


def test_a_trained_runs_card_keeps_its_own_texts(tmp_path: Path) -> None:
    spec = load_spec("gvtnet-care-denoise").model_copy(update={"provenance": Provenance(data="syn", val_images=1)})
    texts = origin_texts(spec, tmp_path / "metrics.csv")
    assert texts["trained_by"] == "trained with gvtnet-zoo" and texts["limitations"] == TRAINED_LIMITATIONS
    assert "1 held-out image(s) of syn" in texts["validation_text"]
    assert "No validation was recorded for this run." in texts["validation_text"]


# 2. what --sample must be

@pytest.mark.parametrize("spec_name, smallest, readme", [
    ("gvtnet-label-free", [8, 120, 120], "label-free 8 x 120 x 120 (z, y, x)"),
    ("gvtnet-care-denoise", [4, 52, 52], "CARE 4 x 52 x 52"),
    ("gvtnet-flywing-projection", [1, 208, 208], "Flywing 208 x 208 in y and x with any number of z planes"),
])
def test_the_readme_gives_the_smallest_sample_the_package_takes(spec_name: str, smallest: list[int],
                                                                readme: str) -> None:
    spec = load_spec(spec_name)
    assert smallest_input(spec.model.size_step(), spec_halo(spec)) == smallest
    assert readme in _readme()


def test_import_without_a_sample_notes_what_package_will_need(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-tf", str(CARE), *CARE_ARGS, "--out", str(tmp_path / "run")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--sample IMAGE" in notes[0] and "at least 4 x 52 x 52 (z, y, x" in notes[0]


def test_a_sample_too_small_is_refused_naming_the_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    thin = _noisy(tmp_path / "thin.tif", (2, 64, 64))  # y and x large enough, z below one step
    assert main(["import-tf", str(CARE), *CARE_ARGS, "--out", str(tmp_path / "refused"), "--sample", str(thin)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is 2 x 64 x 64" in err and "at least 4 x 52 x 52" in err
    assert not (tmp_path / "refused").exists()
    assert main(["import-tf", str(CARE), *CARE_ARGS, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["package", str(tmp_path / "run"), "--out", str(tmp_path / "m.zip"), "--sample", str(thin)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "at least 4 x 52 x 52" in err and "--sample" in err


# 3. --set names the keys

def test_an_unknown_set_key_names_the_set_and_lists_its_sections_keys() -> None:
    with pytest.raises(UserError) as err:
        spec_from_mapping({"name": "x"}, "spec.yaml", ["train.lr=0.001", "model.dpth=3"])
    message = str(err.value)
    assert "(from --set model.dpth=3): model has no key 'dpth'; its keys: " in message
    assert "depth" in message.split("its keys: ")[1] and "\n" not in message
    with pytest.raises(UserError) as err:
        parse_override("dpth=3")
    assert "'dpth' is not a top-level key" in str(err.value) and "model, data, train, export" in str(err.value)
    assert "name=value, description=value" in str(err.value)


@pytest.mark.parametrize("command", ["summary", "train", "import-tf"])
def test_set_help_says_where_the_keys_are(command: str) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    text = next(a.help for a in sub._actions if "--set" in a.option_strings)
    assert "name=my-model" in text and "spec.yaml" in text and "keys of its section" in text


# 4. deepImageJ's engine: one statement in the code and the README, backed by the measurement

def test_deepimagej_engine_is_stated_once_as_measured(imported_package: Path) -> None:
    assert "PyTorch 2.0.0" in DEEPIMAGEJ_ENGINES and DEEPIMAGEJ_ENGINES in _readme()
    measured = (ROOT / "benchmarks" / "results" / "torchscript_compat.md").read_text()
    assert measured.startswith("# TorchScript archives on PyTorch 2.0") and "2.0.1" in measured
    rows = {c.name: c.why for c in partner_checks(imported_package, read_description(imported_package), [])}
    assert DEEPIMAGEJ_ENGINES in rows["deepImageJ: headless Fiji"]


# 5. when an OME-Zarr output gets a pyramid

def test_pyramid_levels_are_made_while_y_and_x_are_at_least_128(tmp_path: Path) -> None:
    assert pyramid_shapes((8, 127, 500), "zyx") == [(8, 127, 500)]  # small: level 0 only
    assert pyramid_shapes((8, 128, 129), "zyx") == [(8, 128, 129), (8, 64, 64)]
    assert pyramid_shapes((2, 300, 260), "cyx") == [(2, 300, 260), (2, 150, 130), (2, 75, 65)]
    image = OutputImage(str(tmp_path / "o.ome.zarr"), "zyx", (4, 300, 260), (4, 128, 128))
    image.create({})
    assert image.finish("o") == pyramid_shapes((4, 300, 260), "zyx")
    assert "`pyramid_shapes`" in _readme() and "an output under 128 in y or x has level 0 only" in _readme()


# 6. what the training sample PNGs show

def test_sample_title_names_the_plane_and_the_scaling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume = np.zeros((16, 32, 32), np.float32)
    title = observe.sample_title("run, step 3: a.tif", volume, volume)
    assert title.startswith("run, step 3: a.tif\n")
    assert "z 8 of 0-15 (the middle plane)" in title and "each panel scaled to its own 0.5-99.5 percentiles" in title
    projected = observe.sample_title("t", np.zeros((5, 32, 32)), np.zeros((32, 32)))
    assert "input: maximum over 5 z planes" in projected
    assert not re.search(r"\bz \d", observe.sample_title("t", np.zeros((32, 32)), np.zeros((32, 32))))
    seen = {}
    monkeypatch.setattr(observe, "save_panels", lambda png, panels, **kw: seen.update(kw))
    observe.save_sample(tmp_path / "s.png", volume, volume, volume, "run, step 3: a.tif")
    assert seen["title"] == title


def test_a_gvtnet_card_tells_deepimagej_users_to_give_the_whole_image(imported_package: Path) -> None:
    """Hostile review of issue 33: a GVTNet's card said tiling is allowed in deepImageJ, where plain tiles change every
    voxel of its output."""
    card = " ".join(zipfile.ZipFile(imported_package).read("README.md").decode().split())
    assert "give it the whole image" in card and "tiling is allowed" not in card
    assert "not a record of how this checkpoint was trained" in card  # the recipe is the spec's, not the authors' log
