"""Reading and writing images, below ``data/`` and ``predict/``: TIFF / OME-TIFF / .npy files read whole
(images.py, files.py), lazy volumes of OME-Zarr, Zarr and TIFF (volumes.py) with their physical sizes
(ngff_meta.py, tiff_meta.py), and OME-Zarr outputs written tile by tile (ome_zarr_out.py). Axes are letters of 'tczyx'."""
