"""napari plugin (``pip install 'gains-seg[napari]'``): a reader and a dock widget over ``gains.inference``.

Nothing else in gains imports this package. ``layers``, ``planes``, ``reader``, ``native`` and ``segment`` need
neither napari nor Qt; ``widget`` needs both. ``layers``, ``planes`` and ``reader`` import no torch (napari may
have drawn its window already: see ``native``). The npe2 manifest is ``napari.yaml`` beside this file.
"""
