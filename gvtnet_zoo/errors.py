"""User-facing errors: the CLI prints their message as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (a file, a spec, a flag). The message says what is wrong and what to do."""
