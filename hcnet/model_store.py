"""Pretrained weights.

Until weights are published, ``pretrained`` accepts a path to a ``.params``
file (for example one written by ``net.save_parameters``); asking for published
weights by name says that none exist yet and how to produce them.
"""
import os

import mxnet as mx

__all__ = ['load_pretrained', 'PretrainedError']


class PretrainedError(ValueError):
    """No usable pretrained weights for the request."""


def load_pretrained(net, name, pretrained, ctx=mx.cpu(), root=None):
    """Load weights into ``net``: ``pretrained`` is True or a ``.params`` path."""
    if isinstance(pretrained, str) and os.path.isfile(pretrained):
        net.load_parameters(pretrained, ctx=ctx)
        return net
    if isinstance(pretrained, str) and (os.sep in pretrained or pretrained.endswith('.params')):
        raise PretrainedError('pretrained weights file %s does not exist' % pretrained)
    raise PretrainedError(
        'no published weights for %r yet: train it with scripts/train_imagenet.py '
        '--config %s.yaml and pass the checkpoint as pretrained=<path>' % (name, name))
