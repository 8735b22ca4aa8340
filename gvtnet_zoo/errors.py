"""The errors the CLI turns into one line: their classes live here, so the CLI needs no heavy import to catch them."""


class UserError(Exception):
    """Bad input from the user (a file, a spec, a flag). The message says what is wrong and what to do. Exit code 2."""


class PackageFailed(Exception):
    """A package did not pass its checks; the message lists why. Exit code 1."""


class TrainingInterrupted(Exception):
    """Ctrl-C during training; last.pt holds the last finished step. Exit code 130."""


class InputWarning(UserWarning):
    """Something in the user's input was set aside (e.g. unusable metadata); the CLI shows it as one line."""


class Cancelled(Exception):
    """The user cancelled a prediction (the GUI's Cancel button); raised between tiles by a progress callback."""


def os_error_line(err: OSError) -> str:
    """'cannot use PATH: REASON; FIX' for an operating-system error about a path."""
    reason = err.strerror or str(err).splitlines()[0]
    fix = {
        "FileNotFoundError": "check the path", "IsADirectoryError": "give a file, not a folder",
        "NotADirectoryError": "a part of the path is a file, not a folder", "PermissionError": "check its permissions",
        "FileExistsError": "choose another name or add --overwrite",
    }.get(type(err).__name__, "check the path and the disk")
    where = err.filename if err.filename is not None else "a file"
    return f"cannot use {where}: {reason}; {fix}"


def refuse_non_finite(block: object, name: str) -> None:
    """UserError naming ``name`` when the array ``block`` holds NaN or Inf: a network spreads them through its
    convolutions and global attention, and the statistics of the normalization would be NaN."""
    import numpy as np

    if not np.isfinite(block).all():
        raise UserError(f"{name}: contains NaN or Inf values; fix or mask them (e.g. replace them by the background) "
                        "before training or prediction")
