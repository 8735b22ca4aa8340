"""Running bioimage.io packages (ours or anyone's) on microscopy files through bioimageio.core."""
