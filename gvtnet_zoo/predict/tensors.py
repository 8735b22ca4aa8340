"""A model tensor's axes as gvtnet-zoo reads them: letters of 'bczyx', ids, and the channel count."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..errors import UserError


def tensor_id(tensor: Any) -> str:
    """A tensor's id (format 0.5) or name (format 0.4)."""
    return str(getattr(tensor, "id", None) or getattr(tensor, "name"))


def axis_letters(tensor: Any) -> list[str]:
    """The tensor's axes as letters of 'bczyx' (format 0.4 strings or 0.5 axis objects)."""
    if isinstance(tensor.axes, str):
        return list(tensor.axes)
    letters = []
    for axis in tensor.axes:
        kind = getattr(axis, "type", "")
        letter = {"batch": "b", "channel": "c"}.get(kind, str(axis.id))
        if letter not in "bczyx" or kind in ("time", "index"):
            raise UserError(f"the model's axis {axis.id!r} ({kind}) is not one gvtnet-zoo can fill from image files")
        letters.append(letter)
    return letters


def channel_count(tensor: Any) -> Optional[int]:
    """How many channels a format 0.5 input names (None for format 0.4 or without a channel axis)."""
    if isinstance(tensor.axes, str):
        return None
    return next((len(a.channel_names) for a in tensor.axes if getattr(a, "type", "") == "channel"), None)


def axis_ids(tensor: Any) -> list[Any]:
    return list(tensor.axes) if isinstance(tensor.axes, str) else [a.id for a in tensor.axes]


def check_channels(tensor: Any, shape: tuple[int, ...], letters: Sequence[str], name: str) -> None:
    """A format 0.5 input names its channels; the image must have that many."""
    expected = channel_count(tensor)
    if expected is None or "c" not in letters:
        return
    found = shape[list(letters).index("c")]
    if found != expected:
        raise UserError(f"{name} has {found} channel(s) but the model takes {expected}; "
                        "give --axes if an axis was taken for channels by mistake (e.g. --axes zyx)")
