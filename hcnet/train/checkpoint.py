"""Training checkpoints: one self-contained file, written under a temporary name and renamed.

A checkpoint holds the network parameters (by structural name, as
``save_parameters`` writes them), the Gluon trainer state (optimizer state,
update counts and so the position in the lr schedule), and a metadata dict
(epoch, best top-1, the model name and classes, the resolved config; no RNG
state, since the trainer reseeds every generator from ``(train.seed, epoch)``).
A process killed while writing leaves the previous checkpoint intact and at most
a ``.tmp`` file (:mod:`hcnet.fileio`).
"""
import io
import os
import pickle
import tempfile

import mxnet as mx

from ..fileio import write_bytes

__all__ = ['save_checkpoint', 'load_checkpoint', 'restore', 'CheckpointError', 'FORMAT']

FORMAT = 'hcnet-checkpoint-1'

#: Where pickled classes of the trainer state (the lr schedule, hcnet's LBSGD optimizer)
#: used to live: a checkpoint written before they moved still resumes.
MOVED_MODULES = {'hcnet.engine': 'hcnet.train.schedule', 'hcnet.optim': 'hcnet.train.optim'}


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return super().find_class(MOVED_MODULES.get(module, module), name)


def _current_names(states):
    """Gluon trainer-state bytes with the classes of :data:`MOVED_MODULES` renamed."""
    if not any(old.encode() in states for old in MOVED_MODULES):
        return states
    return pickle.dumps(_RenamingUnpickler(io.BytesIO(states)).load(), protocol=4)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the network."""


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
    write_bytes(path, blob)  # a temporary name, fsync, rename


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
                f.write(_current_names(ckpt['trainer']))
            trainer.load_states(tmp)
    return ckpt.get('meta', {})
