"""The ``gvtnet-zoo`` command: parse, load the spec, call one API function, turn user errors into one line."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .errors import InputWarning, PackageFailed, TrainingInterrupted, UserError, os_error_line
from .huge_pages import use_huge_pages

# the HTTP clients bioimageio.spec downloads with (only with --allow-download)
NETWORK_ERROR_MODULES = frozenset({"httpx", "httpcore", "requests", "urllib3", "pooch"})
# summary, train and import-tf take the same --set
SET_HELP = ("override a spec value, VALUE as YAML (model.depth=3, train.lr=0.001); the top-level keys name and "
            "description take no section (name=my-model); the keys are those of the spec file (a run's spec.yaml "
            "writes every one out), and a wrong key's error lists the keys of its section; repeatable")


def _summary(args: argparse.Namespace) -> None:
    from .models import build_model, count_parameters
    from .models.summary import format_summary, summarize
    from .spec_loading import load_spec

    spec = load_spec(args.spec, args.set)
    model = build_model(spec)
    in_channels = getattr(spec.model, "in_channels", 1)
    rows = summarize(model, (1, in_channels, *spec.data.patch_size))
    print(f"{spec.name}: {spec.model.architecture}, input 1x{in_channels}x{'x'.join(map(str, spec.data.patch_size))}")
    print(format_summary(rows, count_parameters(model)))


def _train(args: argparse.Namespace) -> None:
    from .spec_loading import load_spec
    from .train.trainer import train

    spec = load_spec(args.spec, args.set)
    train(spec, args.data, args.out, val=args.val, resume=args.resume, overwrite=args.overwrite,
          device=args.device, command=" ".join(["gvtnet-zoo", *sys.argv[1:]]))


def _synth(args: argparse.Namespace) -> None:
    from .data.synthetic import write_synthetic

    try:
        shape = [int(s) for s in args.shape.split(",")]
    except ValueError:
        raise UserError(f"--shape expects integers like 32,128,128 or 256,256, got {args.shape!r}") from None
    if args.n < 1 or args.n_test < 0:
        raise UserError(f"--n {args.n} --n-test {args.n_test}: give at least one training pair (--n 1 or more) and "
                        "no negative number of test pairs")
    out = write_synthetic(args.task, args.out, args.n, args.n_test, shape, args.seed)
    print(f"wrote {args.n} training and {args.n_test} test pairs of {args.task} data to {out}/train and {out}/test")


def _package(args: argparse.Namespace) -> None:
    from .export.package import package_run

    formats = [f.strip() for f in args.weight_formats.split(",")] if args.weight_formats else None
    package_run(args.run, args.out, checkpoint=args.checkpoint, weight_formats=formats, name=args.name,
                description=args.description, authors=args.author, license_id=args.license, sample=args.sample,
                overwrite=args.overwrite)


def _import_tf(args: argparse.Namespace) -> None:
    from .spec_loading import load_spec
    from .tf_import.run import import_tf

    import_tf(args.checkpoint, load_spec(args.spec, args.set), args.out, sample=args.sample, overwrite=args.overwrite)


def _test(args: argparse.Namespace) -> None:
    if args.partners:
        from .export.publish import failed
        from .export.upload import check_package

        _, rows = check_package(Path(args.model), args.weight_format, partners=True, for_upload=False)
        if failed(rows):
            raise PackageFailed(f"{args.model}: {len(failed(rows))} check(s) failed")
        return
    from .export.zoo_test import format_results, formats_to_test, run_zoo_tests
    from .trust import read_description, refuse_downloads

    descr = read_description(args.model)
    refuse_downloads(descr, args.model, args.allow_download)
    results = run_zoo_tests(Path(args.model), formats_to_test(descr, args.weight_format))
    print(f"bioimageio.core test_model on {args.model}:\n{format_results(results)}")
    if not all(r.passed for r in results):
        raise PackageFailed(f"{args.model} failed the zoo's tests")


def _upload(args: argparse.Namespace) -> None:
    from .export.upload import upload_package

    upload_package(Path(args.model), args.dry_run)


def _predict(args: argparse.Namespace) -> None:
    from .predict.arguments import parse_named_inputs, prediction_mode
    from .predict.run import predict_files

    mode, memory = prediction_mode(args)
    if not args.inputs and not args.input:
        raise UserError("give input files or folders (or --input NAME=PATH for each input of the model)")
    if args.context_report:  # before predicting: reads each image itself, changes no prediction
        from .predict.context_report import report_files

        report_files(args.model, args.inputs, print)
    if streamed(args):
        if mode == "patches":
            raise UserError("--patches runs in memory; predict TIFF/.npy files without --out-format ome-zarr or --dask "
                            "(or use --tile / --global-context to stream)")
        return _predict_streamed(args, mode)
    if args.resume or args.level is not None:
        raise UserError(f"{'--resume' if args.resume else '--level'} applies to OME-Zarr outputs or inputs; "
                        "add --out-format ome-zarr")
    predict_files(args.model, args.inputs, args.out, named_inputs=parse_named_inputs(args.input),
                  weight_format=args.weight_format, device=args.device, mode=mode, tile=args.tile, axes=args.axes,
                  overwrite=args.overwrite, allow_download=args.allow_download, halo=args.halo,
                  pixel_size=args.pixel_size, keep_model_pixel_size=args.keep_model_pixel_size,
                  denormalize=args.denormalize, patches=args.patches,
                  overlap=args.overlap, memory_budget=memory)


def streamed(args: argparse.Namespace) -> bool:
    """Zarr inputs, an OME-Zarr output or a Dask cluster: tiles streamed from and to disk."""
    from .image_io.files import collect_inputs, is_zarr

    if args.dask_workers is not None and args.dask is None:
        args.dask = "local"
    if args.out_format == "ome-zarr" or args.dask is not None:
        return True
    if args.input:
        return False
    try:
        inputs = collect_inputs(args.inputs)
    except UserError:
        return False  # predict_files reports it, after the model
    if any(is_zarr(p) for p in inputs):
        return True
    if args.whole or args.patches:  # in memory by request
        return False
    from .predict.memory import free_memory_bytes, too_large_for_memory

    large = too_large_for_memory(inputs, free_memory_bytes(["cpu"]))
    if large:  # auto and tiles: never read whole what does not fit
        print(f"note: {large[0].name}{f' and {len(large) - 1} more' if len(large) > 1 else ''} would not fit in memory; "
              "streaming tile by tile to OME-Zarr (.ome.zarr outputs)")
    return bool(large)


def _predict_streamed(args: argparse.Namespace, mode: str) -> None:
    from .image_io.files import collect_inputs
    from .predict.arguments import memory_budget, parse_tile
    from .predict.pixel_size import check_keep_model_pixel_size
    from .predict.stream import predict_volumes

    check_keep_model_pixel_size(args.pixel_size, args.keep_model_pixel_size)
    if args.pixel_size is not None:
        raise UserError("--pixel-size resizes images read into memory; resample the volume to the model's pixel size "
                        "first, or predict TIFF/.npy files without --out-format ome-zarr")
    if args.input:
        raise UserError("streamed prediction (Zarr, --out-format ome-zarr, --dask) takes models with one input; "
                        "give the images as INPUT")
    if args.dask not in (None, "local") and Path(args.dask).exists() and not Path(args.dask).is_file():
        raise UserError(f"--dask took {args.dask} for the scheduler's address; put --dask after the inputs, "
                        "or write --dask=ADDRESS")
    if args.dask_workers is not None and (args.dask != "local" or args.dask_workers < 1):
        raise UserError("--dask-workers sets the size of the local cluster: a number of at least 1, without an ADDRESS")
    tile = {"z": 2**31, "y": 2**31, "x": 2**31} if mode == "whole" else parse_tile(args.tile, 3)
    # tile and auto: global context where it applies (a GVTNet's tiles exact); whole is one plain tile
    global_context = True if mode == "global" else False if mode in ("plain", "whole") else None
    predict_volumes(args.model, collect_inputs(args.inputs), Path(args.out), weight_format=args.weight_format,
                    device=args.device, global_context=global_context, tile=tile,
                    halo=parse_tile(args.halo, 3, "--halo", minimum=0) or {}, axes=args.axes, level=args.level,
                    overwrite=args.overwrite, resume=args.resume, allow_download=args.allow_download, dask=args.dask,
                    dask_workers=args.dask_workers, denormalize=args.denormalize, memory_budget=memory_budget(args))


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluate.report import evaluate

    evaluate(args.pred, args.truth, args.out, baseline=args.baseline, plot=args.plot, overwrite=args.overwrite)


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(args.out), steps=args.steps)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gvtnet-zoo",
        description="GVTNets and U-Net baselines for augmented microscopy, packaged for the BioImage Model Zoo.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    summary = sub.add_parser("summary", help="print a spec's network block by block with parameter counts")
    summary.add_argument("spec", help="a spec YAML file, or the name of a shipped spec (e.g. gvtnet-label-free)")
    summary.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=SET_HELP)
    summary.set_defaults(handler=_summary)
    train = sub.add_parser("train", help="train a spec's network on image pairs into a run folder")
    train.add_argument("spec", help="a spec YAML file, or the name of a shipped spec")
    train.add_argument("--data", required=True, help="folder with source/ and target/, a CSV of pairs, or a CSBDeep .npz")
    train.add_argument("--out", required=True, help="the run folder (checkpoints, metrics, curves)")
    train.add_argument("--val", help="validation data (same forms as --data); default: hold out data.val_fraction")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=SET_HELP)
    train.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    train.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    train.set_defaults(handler=_train)
    package = sub.add_parser("package", help="turn a training run into a bioimage.io package, tested by the zoo's checks")
    package.add_argument("run", help="the run folder written by gvtnet-zoo train")
    package.add_argument("--out", required=True, help="the package to write, e.g. model.zip")
    package.add_argument("--checkpoint", choices=["best", "last"], default="best",
                         help="which of the run's checkpoints to package: best (the best validation by train.best_by, "
                              "default) or last")
    package.add_argument("--weight-formats", help="comma-separated: torchscript,onnx,pytorch_state_dict (default: all)")
    package.add_argument("--name", help="model name (default: the spec's name)")
    package.add_argument("--description", help="one-line description (default: the spec's)")
    package.add_argument("--author", action="append", default=[], metavar="NAME;AFFILIATION;ORCID",
                         help="an author (repeatable); default: the spec's export.authors")
    package.add_argument("--license", help="SPDX license id (default: the spec's export.license, MIT)")
    package.add_argument("--sample", help="input image for the test tensors and cover (default: the run's held-out image)")
    package.add_argument("--overwrite", action="store_true", help="replace an existing package at --out")
    package.set_defaults(handler=_package)
    imp = sub.add_parser("import-tf", help="turn an original GVTNets TF1 checkpoint into a run folder to package")
    imp.add_argument("checkpoint", help="the checkpoint prefix, e.g. save_dir/label-free/dna/models/"
                                        "gvtnet_label-free_pretrained/model.ckpt-pretrained")
    imp.add_argument("--spec", required=True, help="the spec of the checkpoint's network, e.g. gvtnet-label-free")
    imp.add_argument("--out", required=True, help="the run folder to write")
    imp.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=SET_HELP)
    imp.add_argument("--sample", help="an input image of the task, kept for the package's test tensors and cover")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing run folder at --out")
    imp.set_defaults(handler=_import_tf)
    test = sub.add_parser("test", help="run the zoo's test_model on a package for every weight format")
    test.add_argument("model", help="a package .zip, its folder or its rdf.yaml")
    test.add_argument("--weight-format", choices=["pytorch_state_dict", "torchscript", "onnx"],
                      help="default: every format; a state dict whose code is not gvtnet-zoo's only if named")
    test.add_argument("--allow-download", action="store_true",
                      help="let the package's remote files be downloaded (sha256-checked); default: refused")
    test.add_argument("--partners", action="store_true",
                      help="also the upload checks and bioimage.io's partner rules (core determinism=full, ilastik, "
                           "deepImageJ), as far as they run here")
    test.set_defaults(handler=_test)
    upload = sub.add_parser("upload", help="check a package, then upload it to bioimage.io for review")
    upload.add_argument("model", help="a package .zip (or its folder or rdf.yaml) made by gvtnet-zoo package")
    upload.add_argument("--dry-run", action="store_true", help="run the checks and say what would be sent; send nothing")
    upload.set_defaults(handler=_upload)
    predict = sub.add_parser("predict", help="run any bioimage.io model on TIFF/.npy files or OME-Zarr volumes")
    predict.add_argument("model", help="a bioimage.io package: .zip, folder or rdf.yaml (format 0.4 or 0.5)")
    predict.add_argument("inputs", nargs="*", metavar="INPUT",
                         help="TIFF or .npy files, OME-Zarr or Zarr images, or folders of them")
    predict.add_argument("--input", action="append", default=[], metavar="NAME=PATH",
                         help="for models with several inputs: the files (or folder) of input NAME; repeatable")
    predict.add_argument("--out", required=True, help="folder for the predictions (same file names as the inputs)")
    predict.add_argument("--weight-format", choices=["onnx", "torchscript", "pytorch_state_dict"],
                         help="default: onnx, then torchscript; pytorch_state_dict (runs package code) only if named")
    predict.add_argument("--device", default="auto", help="auto (CUDA when it works), cpu, cuda or cuda:N")
    whole_or_tiles = predict.add_mutually_exclusive_group()
    whole_or_tiles.add_argument("--whole", action="store_true", help="predict each image at once")
    whole_or_tiles.add_argument("--tile", metavar="Z,Y,X", help="predict in tiles of about this size (input voxels, "
                                "the halos inside it and cropped; at least 2 halos and one step of the model; a size "
                                "of at least the image's leaves that axis whole); a gvtnet-zoo GVTNet's tiles run "
                                "with global context, equal to --whole")
    predict.add_argument("--global-context", action="store_true",
                         help="GVTNet packages made by gvtnet-zoo: the whole image's result in tiles of --tile "
                              "(default 64,256,256), tile-sized memory; what --tile does for them anyway")
    predict.add_argument("--plain-tiles", action="store_true",
                         help="tiles each predicted on its own (of --tile, default 64,256,256), even a GVTNet's: "
                              "its attention then sees only the tile, which changes every voxel (a warning says so)")
    predict.add_argument("--memory", metavar="SIZE",
                         help="tiles: the largest whose modelled peak fits in SIZE per process (e.g. 1.5GiB, 800MiB; "
                              "each Dask worker alike); global context keeps its pass states in half of it; "
                              "--tile overrides")
    predict.add_argument("--halo", metavar="Z,Y,X",
                         help="tiles: the halo (input voxels) per axis instead of the package's, e.g. 0,32,32")
    predict.add_argument("--patches", metavar="Z,Y,X",
                         help="the original GVTNets' cropped prediction, in memory: patches of this size (Y,X for 2D; "
                              "rounded up to the model's step; a projection's z stays whole), each predicted on its "
                              "own and averaged where they overlap; the paper's CARE numbers used 128,256,256")
    predict.add_argument("--overlap", metavar="Z,Y,X",
                         help="--patches: voxels consecutive patches share per axis (default 0; the paper: 64,64,64); "
                              "the last patch is flush with the image's end")
    predict.add_argument("--axes", help="axes of the input files as letters of bczyx, e.g. zyx (default: from the file)")
    predict.add_argument("--pixel-size", type=float, metavar="UM",
                         help="the inputs' pixel size in y and x (micrometres): each image is resized to the pixel size "
                              "the model declares (e.g. 0.29 for the label-free GVTNets) and the output back; "
                              "a per-image z-score of the package is taken before resizing, as the original did")
    predict.add_argument("--keep-model-pixel-size", action="store_true",
                         help="with --pixel-size: write the outputs at the model's pixel size (not resized back), "
                              "to compare them voxel for voxel with the original GVTNets code's outputs")
    predict.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    predict.add_argument("--out-format", choices=["auto", "ome-zarr"], default="auto",
                         help="auto: like the input (Zarr inputs give OME-Zarr); ome-zarr: stream any input to OME-Zarr")
    predict.add_argument("--level", type=int, help="OME-Zarr inputs: the resolution level to predict (default 0, full)")
    predict.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                         help="run the tiles on a Dask cluster: a scheduler address or scheduler file; "
                              "alone, a local cluster with one worker per core (or GPU)")
    predict.add_argument("--dask-workers", type=int, metavar="N",
                         help="the local Dask cluster's worker processes (default: one per core, or per GPU)")
    predict.add_argument("--resume", action="store_true",
                         help="complete an interrupted OME-Zarr prediction, keeping the tiles already written")
    predict.add_argument("--context-report", action="store_true",
                         help="gvtnet-zoo GVTNets: print per GVTO how far each image's global context (K^T V / N) lies "
                              "from the one recorded at package time, and whether beyond the recorded spread "
                              "(docs/results.md: a diagnostic, no guarantee); predictions are unchanged")
    predict.add_argument("--denormalize", action="store_true",
                         help="map outputs back to the input's intensity units as CSBDeep and the original GVTNets do: "
                              "out * (p_high - p_low) + p_low, the percentiles the package's scale_range took of each "
                              "image; refused for packages without a per-sample scale_range, with several inputs, "
                              "dataset statistics, or postprocessing of their own")
    predict.add_argument("--allow-download", action="store_true",
                         help="let the package's remote files be downloaded (sha256-checked); default: refused")
    predict.set_defaults(handler=_predict)
    evaluate = sub.add_parser("evaluate", help="CARE-protocol metrics of predictions against ground truth")
    evaluate.add_argument("pred", help="a folder of predictions, or one prediction image (TIFF or .npy)")
    evaluate.add_argument("truth", help="a folder of ground-truth images (paired by file name), or one image when "
                                        "PRED is one")
    evaluate.add_argument("--out", help="CSV of per-image metrics (default: PRED-metrics.csv beside PRED)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing CSV or plot")
    evaluate.add_argument("--baseline", help="a baseline model's predictions (folder, or file like PRED) for a paired "
                                             "comparison")
    evaluate.add_argument("--plot", help="PNG of box plots, model against baseline")
    evaluate.set_defaults(handler=_evaluate)
    synth = sub.add_parser("synth", help="write synthetic microscopy pairs for tests and demos")
    synth.add_argument("task", choices=["denoise", "label-free", "projection"])
    synth.add_argument("--out", required=True, help="folder to write train/ and test/ into")
    synth.add_argument("--n", type=int, default=8, help="training pairs (default 8)")
    synth.add_argument("--n-test", type=int, default=2, help="test pairs (default 2)")
    synth.add_argument("--shape", default="32,128,128", help="Z,Y,X or Y,X of each source image (default 32,128,128)")
    synth.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same images")
    synth.set_defaults(handler=_synth)
    demo = sub.add_parser("demo", help="train, package, predict and evaluate a GVTNet and a U-Net on real data")
    demo.add_argument("--out", default="demo-out", help="folder for the demo's results (default: demo-out)")
    demo.add_argument("--steps", type=int, help="training steps per model (default: the demo specs', 300)")
    demo.set_defaults(handler=_demo)
    return parser


def _one_line_warnings(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                       line: str | None = None) -> str:
    """Warnings about the user's input as one line, like the errors; others as Python formats them."""
    if issubclass(category, InputWarning):
        return f"gvtnet-zoo: warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


_python_format = warnings.formatwarning


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warnings
    use_huge_pages()  # before torch's first allocation, the only time PyTorch reads the setting
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as err:
        print(f"gvtnet-zoo: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a user path that cannot be read or written: outputs are written atomically, none is left
        print(f"gvtnet-zoo: error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except PackageFailed as failure:
        print(f"gvtnet-zoo: {failure}", file=sys.stderr)
        return 1
    except TrainingInterrupted as stop:
        print(f"gvtnet-zoo: {stop}", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - only a download's failure is the user's to fix; others propagate
        if type(err).__module__.split(".")[0] not in NETWORK_ERROR_MODULES:
            raise
        print(f"gvtnet-zoo: error: a download failed ({type(err).__name__}: {str(err)[:200]}); check the network "
              "or the package's URLs", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
