"""The napari plugin (optional extra ``gvtnet-zoo[napari]``): train, package and predict in the viewer.

The widgets call the same API functions as the CLI (``train``, ``package_run``, ``predict_image``,
``predict_volumes``) in napari's background workers and hold no logic of their own; nothing outside
this folder imports Qt or napari.
"""
