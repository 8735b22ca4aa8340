"""Package widget: a finished run to a bioimage.io package, the zoo's test result per weight format, and
"Predict with it" opening the Predict widget on the new package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from magicgui.widgets import CheckBox, ComboBox, FileEdit, Label, LineEdit, PushButton

from ..errors import UserError
from .common import WorkerWidget, chosen_path, report
from .predict_widget import PredictWidget

if TYPE_CHECKING:
    import napari


class PackageWidget(WorkerWidget):
    """Run folder, package file, name, description, authors, licence; Package runs package_run in a worker."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        super().__init__(napari_viewer)
        self.run_dir = FileEdit(label="run folder", mode="d")
        self.out = FileEdit(label="package", mode="w", filter="*.zip")
        self.checkpoint = ComboBox(label="checkpoint", choices=["best", "last"], value="best")
        self.name = LineEdit(label="name", tooltip="default: the spec's name")
        self.description = LineEdit(label="description", tooltip="default: the spec's")
        self.authors = LineEdit(label="authors", tooltip="Name;affiliation;orcid, several separated by |")
        self.license = LineEdit(label="licence", value="MIT", tooltip="an SPDX id, e.g. MIT or CC-BY-4.0")
        self.overwrite = CheckBox(label="replace an existing package", value=False)
        self.package_button = PushButton(text="Package and test")
        self.results = Label(label="zoo tests", value="")
        self.predict_button = PushButton(text="Predict with it", enabled=False)
        self.extend([self.run_dir, self.out, self.checkpoint, self.name, self.description, self.authors, self.license,
                     self.overwrite, self.package_button, self.results, self.predict_button])
        self.package: Optional[Path] = None
        self.predict_widget: Optional[PredictWidget] = None
        self.package_button.changed.connect(self.start)
        self.predict_button.changed.connect(self.open_predict)

    def start(self) -> Any:
        """Check the fields here (one notification if wrong), then package and test in a worker."""
        worker = self.launch(self._job, _package, self.relay.event.emit)
        if worker is not None:
            self.package, self.results.value = None, "packaging and testing..."
            self.package_button.enabled = self.predict_button.enabled = False
        return worker

    def _job(self) -> dict[str, Any]:
        run, out = chosen_path(self.run_dir), chosen_path(self.out)
        if run is None or out is None:
            raise UserError(f"choose {'the run folder to package' if run is None else 'where to write the package (.zip)'}")
        authors = [a.strip() for a in self.authors.value.split("|") if a.strip()]
        return {"run": run, "out": out, "checkpoint": self.checkpoint.value,
                "name": self.name.value.strip() or None, "description": self.description.value.strip() or None,
                "authors": authors, "license": self.license.value.strip() or None, "overwrite": self.overwrite.value}

    def on_event(self, results: list[Any]) -> None:
        self.results.value = "\n".join(f"{r.weight_format}: {'passed' if r.passed else 'FAILED'}" for r in results)

    def on_return(self, package: Path) -> None:
        self.package = package
        self.predict_button.enabled = True
        self.results.value += f"\nwrote {package.name}"

    def on_error(self, err: BaseException) -> None:
        report(err)
        if not self.results.value or self.results.value.startswith("packaging"):
            self.results.value = "failed (see the notification)"

    def on_finish(self) -> None:
        self.package_button.enabled = True

    def open_predict(self) -> Optional[PredictWidget]:
        """The Predict widget (docked once) with the new package chosen."""
        if self.package is None:
            return None
        if self.predict_widget is None:
            self.predict_widget = PredictWidget(self.viewer)
            self.viewer.window.add_dock_widget(self.predict_widget, name="Predict (gvtnet-zoo)", area="right")
        self.predict_widget.model.value = self.package
        return self.predict_widget


def _package(job: dict[str, Any], tested: Any) -> Path:
    """In the worker: the CLI's package_run; ``tested`` hears the per-format results, pass or fail."""
    from ..export.package import package_run

    return package_run(job["run"], job["out"], checkpoint=job["checkpoint"], name=job["name"],
                       description=job["description"], authors=job["authors"], license_id=job["license"],
                       overwrite=job["overwrite"], echo=lambda _: None, tested=tested)
