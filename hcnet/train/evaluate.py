"""Validation: top-1 / top-5 over a pipeline, reduced across ranks, and the CPU twin
network validation runs on during training (:class:`EvalTwin`)."""
import mxnet as mx
import numpy as np
from mxnet import gluon

from .backend import LocalBackend
from .model import build_model

__all__ = ['evaluate', 'EvalTwin']


def evaluate(net, val, ctx, backend=None, dtype='float32'):
    """Top-1 / top-5 (%) over ``val`` (each rank its part), reduced across ranks.

    Returns ``(top1, top5, images)``.
    """
    backend = backend or LocalBackend()
    counts = np.zeros(3, dtype=np.float64)  # correct@1, correct@5, images
    for data, label in val.epoch(0):
        datas = gluon.utils.split_and_load(data, ctx, even_split=False)
        labels = gluon.utils.split_and_load(label, ctx, even_split=False)
        for x, y in zip(datas, labels):
            out = net(x.astype(dtype, copy=False) if dtype == 'float16' else x).astype('float32')
            k = min(5, out.shape[1])
            top = mx.nd.topk(out, k=k, axis=1).asnumpy()
            y = y.asnumpy().reshape(-1, 1)
            counts += (float((top[:, :1] == y).sum()), float((top == y).any(axis=1).sum()),
                       float(len(y)))
    counts = backend.allreduce_sum(counts)
    images = max(counts[2], 1)
    return 100 * counts[0] / images, 100 * counts[1] / images, int(counts[2])


class EvalTwin:
    """A second instance of the trained network that validation runs on (CPU).

    In inference mode, MXNet's oneDNN convolution and dense operators convert their weight
    arrays to oneDNN blocked layouts in place, through an operation pushed from inside the
    running operator (``NDArray::MKLDNNDataReorderAsync``); the next training-mode pass
    pushes the conversion back (``Reorder2DefaultAsync``). Training on arrays an inference
    pass has touched is not reproducible on the threaded engine: two runs with the same seed
    agree until the first validation and then diverge (and a resumed run, whose arrays are
    plain, cannot follow an uninterrupted one). With ``MXNET_ENGINE_TYPE=NaiveEngine`` the
    divergence disappears, and the parameters are those of a run that never validates --
    which is what validating on this twin gives, on the threaded engine.

    Before each validation the twin receives a copy of every parameter (BatchNorm running
    statistics included); the training arrays are only read. Building the twin draws
    random numbers (its throw-away initial weights).
    """

    def __init__(self, cfg, ctx, net, dtype):
        self.net = build_model(cfg, ctx, pretrained=False)  # the weights are copied in
        if dtype == 'float16':
            self.net.cast('float16')
        self.net.hybridize(static_alloc=True, static_shape=True)
        mine = self.net._collect_params_with_prefix()
        self._pairs = [(p, mine[name]) for name, p in net._collect_params_with_prefix().items()]

    def sync(self):
        """Copy the training parameters into the twin; returns the twin network."""
        for src, dst in self._pairs:
            for c in src.list_ctx():
                src.data(c).copyto(dst.data(c))
        return self.net
