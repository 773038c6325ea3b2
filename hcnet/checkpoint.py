"""Training checkpoints: one self-contained file, written under a temporary name and renamed.

A checkpoint holds the network parameters (by structural name, as
``save_parameters`` writes them), the Gluon trainer state (optimizer state,
update counts and so the position in the lr schedule), and a metadata dict
(epoch, best metric, RNG states, the model name). A process killed while
writing leaves the previous checkpoint intact and at most a ``.tmp`` file.
"""
import os
import pickle
import tempfile

import mxnet as mx
import numpy as np

__all__ = ['save_checkpoint', 'load_checkpoint', 'restore', 'export_params', 'CheckpointError',
           'FORMAT']

FORMAT = 'hcnet-checkpoint-1'


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the network."""


def _atomic_write(path, data):
    tmp = '%s.tmp.%d' % (path, os.getpid())
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _net_arrays(net):
    return {name: p.data(p.list_ctx()[0]).asnumpy()
            for name, p in net._collect_params_with_prefix().items()}


def save_checkpoint(path, net, trainer=None, meta=None):
    """Write ``net`` (+ ``trainer`` state and ``meta``) to ``path`` atomically."""
    # Let pending operations finish: on CPU, BatchNorm's backward pass updates the running
    # statistics behind the engine's back (they are declared as its inputs), so reading
    # them right after a training step could see the previous values.
    mx.nd.waitall()
    states = None
    if trainer is not None:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = os.path.join(tmpdir, 'states')
            trainer.save_states(tmp)
            with open(tmp, 'rb') as f:
                states = f.read()
    blob = pickle.dumps({'format': FORMAT, 'params': _net_arrays(net), 'trainer': states,
                         'meta': dict(meta or {})}, protocol=4)
    _atomic_write(path, blob)


def load_checkpoint(path):
    """Read a checkpoint file into a dict (``params``, ``trainer``, ``meta``)."""
    try:
        with open(path, 'rb') as f:
            ckpt = pickle.load(f)
    except FileNotFoundError:
        raise CheckpointError('checkpoint %s does not exist' % path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as err:
        raise CheckpointError('checkpoint %s is corrupt or truncated (%s)' % (path, err)) from None
    if not isinstance(ckpt, dict) or ckpt.get('format') != FORMAT:
        raise CheckpointError('%s is not an hcnet checkpoint' % path)
    return ckpt


def restore(ckpt, net, trainer=None):
    """Load a checkpoint dict into ``net`` (initialised, shapes known) and ``trainer``."""
    params = net._collect_params_with_prefix()
    missing = sorted(set(params) - set(ckpt['params']))
    extra = sorted(set(ckpt['params']) - set(params))
    if missing or extra:
        raise CheckpointError('checkpoint does not fit the network: missing %s, unexpected %s'
                              % (missing[:5], extra[:5]))
    for name, p in params.items():
        value = ckpt['params'][name]
        if tuple(p.shape) != value.shape:
            raise CheckpointError('checkpoint parameter %s has shape %s, network %s'
                                  % (name, value.shape, p.shape))
        p.set_data(mx.nd.array(value, dtype=value.dtype))
    if trainer is not None and ckpt.get('trainer') is not None:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = os.path.join(tmpdir, 'states')
            with open(tmp, 'wb') as f:
                f.write(ckpt['trainer'])
            trainer.load_states(tmp)
    return ckpt.get('meta', {})


def export_params(ckpt_path, params_path):
    """Write the parameters of a checkpoint as a Gluon ``.params`` file."""
    ckpt = load_checkpoint(ckpt_path)
    arrays = {k: mx.nd.array(v, dtype=v.dtype) for k, v in ckpt['params'].items()}
    tmp = params_path + '.tmp'
    mx.nd.save(tmp, arrays)
    os.replace(tmp, params_path)
    return ckpt.get('meta', {})


def params_equal(a, b):
    """True if two parameter dicts (name -> numpy) are identical."""
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
