"""Dataset preparation tools (not the training pipelines, which are :mod:`hcnet.train.data`).

* :mod:`.irnet100` -- IR-Net's dataset: 100 ImageNet classes downsampled by 4 to 56x56
  (``hcnet irnet-data``), with the class list it ships (``irnet100_classes.txt``).

A leaf package: it imports only :mod:`hcnet.fileio` (and MXNet's RecordIO writer when asked
for ``.rec`` files).
"""
