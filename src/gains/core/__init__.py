"""The ground floor every room stands on: mask crops, rasterisation and RLE (``masks``), the COCO loader and its
checks (``coco``, ``checks``), the one image reader (``images``) and what it takes from a file (``planes``),
and devices and process ranks (``parallel``).

Nothing here imports a room above (gamm, data, models, engine, evaluation, inference, formats, ...); only
``parallel`` imports torch.
"""
