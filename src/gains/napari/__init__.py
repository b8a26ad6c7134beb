"""napari plugin (``pip install 'gains-seg[napari]'``): a reader and a dock widget over ``gains.inference``.

Nothing else in gains imports this package. ``layers``, ``reader`` and ``segment`` need neither napari nor Qt;
``widget`` needs both. The npe2 manifest is ``napari.yaml`` beside this file.
"""
