"""Model artifacts to defects: engine backends, post-processing, Kaggle RLE and scoring,
the Severstal dataset format and the synthetic steel line.

Everything importable from here is numpy/OpenCV only; torch is imported by the torch backend
alone, when it is selected.
"""
