"""3D-to-2D surface projection: a demo-size projection GVTNet against a plain maximum projection.

Synthetic data (`gvtnet-zoo synth projection`: a curved sheet of cell outlines in a noisy stack with
clutter off the sheet); the model is trained, packaged (zoo tests run), and predicts the test stacks
through its package; both it and the maximum projection of the noisy stack are scored against the
clean surface image by the CARE protocol, with one-tailed paired t-tests.

    python benchmarks/projection_vs_max.py --work bench-projection --steps 600 --out docs/results.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import emit  # noqa: E402

from gvtnet_zoo.data.synthetic import write_synthetic  # noqa: E402
from gvtnet_zoo.evaluate.report import comparison_table, score_folder  # noqa: E402
from gvtnet_zoo.export.package import package_run  # noqa: E402
from gvtnet_zoo.image_io.images import read_image, write_tiff  # noqa: E402
from gvtnet_zoo.predict.run import predict_files  # noqa: E402
from gvtnet_zoo.spec_loading import load_spec  # noqa: E402
from gvtnet_zoo.train.trainer import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("bench-projection"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, help="append the report to this markdown file")
    args = parser.parse_args()
    data = args.work / "data"
    if not (data / "test").exists():
        write_synthetic("projection", data, 0, 6, (24, 224, 224), seed=11)
        write_synthetic("projection", data / "training", 12, 2, (24, 128, 128), seed=10)
    every = max(args.steps // 4, 1)
    spec = load_spec("demo-gvtnet-projection", [f"train.steps={args.steps}", f"train.val_every={every}",
                                                f"train.checkpoint_every={every}"])
    start = time.perf_counter()
    run = train(spec, data / "training" / "train", args.work / "run", val=data / "training" / "test", overwrite=True,
                command="benchmarks/projection_vs_max.py")
    seconds = time.perf_counter() - start
    package = package_run(run.root, args.work / "projection.zip", echo=lambda _: None, overwrite=True,
                          sample=sorted((data / "test" / "source").iterdir())[0])
    predict_files(package, [data / "test" / "source"], args.work / "gvtnet", mode="whole", overwrite=True,
                  echo=lambda _: None)
    for path in sorted((data / "test" / "source").iterdir()):
        write_tiff(args.work / "max" / path.name, read_image(path).max(axis=0))
    model = score_folder(args.work / "gvtnet", data / "test" / "target")
    baseline = score_folder(args.work / "max", data / "test" / "target")
    lines = ["## 3D-to-2D projection: GVTNet against a maximum projection (synthetic)", "",
             f"`python benchmarks/projection_vs_max.py --work {args.work} --steps {args.steps}`: demo-gvtnet-projection "
             f"trained {args.steps} steps ({seconds:.0f} s on this machine) on 12 stacks of 24 x 128 x 128; scored on "
             f"{len(model)} held-out stacks of 24 x 224 x 224 against the clean surface image (CARE protocol).", "",
             *comparison_table(model, baseline, ("GVTNet", "max projection"))]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
