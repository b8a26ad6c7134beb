"""Tests of the napari plugin: layer builders and reader always; the widget only where napari and Qt are."""
