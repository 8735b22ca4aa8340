"""The errors the CLI turns into one line: their classes live here, so the CLI needs no heavy import to catch them."""


class UserError(Exception):
    """Bad input from the user (a file, a spec, a flag). The message says what is wrong and what to do. Exit code 2."""


class PackageFailed(Exception):
    """A package did not pass its checks; the message lists why. Exit code 1."""


class TrainingInterrupted(Exception):
    """Ctrl-C during training; last.pt holds the last finished step. Exit code 130."""


class Cancelled(Exception):
    """The user cancelled a prediction (the GUI's Cancel button); raised between tiles by a progress callback."""
