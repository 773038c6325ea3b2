"""Training checkpoints that cannot run code: arrays in MXNet's array format, metadata as JSON.

A checkpoint is one file, a zip archive (stored, not compressed) of two members:

``meta.json``
    ``format`` (:data:`FORMAT`), the metadata given by the trainer (epoch, best top-1, the
    model name and classes, the resolved config), the optimizer's position (its kind,
    ``num_update`` and the per-parameter update counts, keyed by parameter name) and the
    structure of its per-parameter states, and the sha256 of ``arrays.params``.
``arrays.params``
    every array, written by ``mx.nd.save``: the network's parameters under their structural
    names (as ``save_parameters`` writes them, ``params/NAME``), the optimizer's states
    (``state/NAME/K``) and, in a checkpoint written mid-epoch, each replica's (rank's,
    device's) own BatchNorm running statistics (``replica/R/NAME``), so that a resumed
    distributed run continues with every replica's statistics.

Loading parses JSON and MXNet's array format only -- nothing is unpickled, neither the file
nor the optimizer (MXNet's own ``Trainer.save_states`` pickles the optimizer, its lr
schedule included: a file from someone else could run code, and a resumed run would keep
the *old* schedule). :func:`restore` loads the states into the optimizer the *current*
config built, so the recipe comes from the config and the position from the checkpoint.
Files of the first, pickled format are recognised and refused without being unpickled.

The zip members' CRC-32 and the recorded sha256 catch bit flips; sizes are checked against
the file before anything is read, so a crafted file ends in :class:`CheckpointError`, never
in ``MemoryError``. Files are written under a temporary name and renamed
(:mod:`hcnet.fileio`): a process killed while writing leaves the previous checkpoint intact.
"""
import hashlib
import io
import json
import os
import tempfile
import zipfile

import mxnet as mx
import numpy as np

from ..fileio import atomic_path

__all__ = ['save_checkpoint', 'load_checkpoint', 'load_checkpoint_bytes', 'restore',
           'CheckpointError', 'FORMAT']

FORMAT = 'hcnet-checkpoint-2'
_META, _ARRAYS = 'meta.json', 'arrays.params'
#: the first bytes of the first (pickled) format: pickle protocol 4
_PICKLE_MAGIC = b'\x80\x04'
#: a metadata member larger than this is not a checkpoint's (configs are a few KB)
_MAX_META = 64 << 20


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the network."""


# --------------------------------------------------------------------------------------
# the optimizer's state, without pickle

def _updaters(trainer):
    """The Gluon trainer's updaters (one per device, or the kvstore's), initialised."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    if trainer._update_on_kvstore:
        updater = getattr(trainer._kvstore, '_updater', None)
        if updater is None:
            raise CheckpointError('the optimizer state lives on a distributed kvstore: '
                                  'checkpoints support local and Horovod training')
        return [updater]
    return list(trainer._updaters)


def _flatten_state(state, key, arrays):
    """A JSON description of ``state`` (None, an NDArray or nested tuples / lists of them);
    its arrays go into ``arrays`` under ``key/K``."""
    if state is None:
        return None
    if isinstance(state, mx.nd.NDArray):
        name = '%s/%d' % (key, len(arrays))
        arrays[name] = state.asnumpy()
        return {'array': name}
    if isinstance(state, (tuple, list)):
        return {'tuple' if isinstance(state, tuple) else 'list':
                [_flatten_state(s, key, arrays) for s in state]}
    raise CheckpointError('optimizer state of type %s cannot be saved' % type(state).__name__)


def _build_state(desc, arrays, what):
    if desc is None:
        return None
    if not isinstance(desc, dict) or len(desc) != 1:
        raise CheckpointError('%s: malformed optimizer state description' % what)
    (kind, value), = desc.items()
    if kind == 'array':
        if value not in arrays:
            raise CheckpointError('%s: optimizer state array %s is missing' % (what, value))
        a = arrays[value]
        return mx.nd.array(a, dtype=a.dtype)
    if kind in ('tuple', 'list') and isinstance(value, list):
        parts = [_build_state(v, arrays, what) for v in value]
        return tuple(parts) if kind == 'tuple' else parts
    raise CheckpointError('%s: malformed optimizer state description' % what)


def _param_names(net, trainer):
    """Structural name of each of the trainer's parameters, by index."""
    by_id = {id(p): name for name, p in net._collect_params_with_prefix().items()}
    names = [by_id.get(id(p)) for p in trainer._params]
    if None in names:
        raise CheckpointError('the trainer holds parameters that are not the network\'s')
    return names


def _trainer_state(net, trainer, arrays):
    updater = _updaters(trainer)[0]
    opt = updater.optimizer
    names = _param_names(net, trainer)
    states = {}
    for index, state in updater.states.items():
        if not isinstance(index, int) or not 0 <= index < len(names):
            raise CheckpointError('optimizer state for an unknown parameter index %r' % (index,))
        states[names[index]] = _flatten_state(state, 'state/' + names[index], arrays)
    counts = {str(device): {names[i]: int(c) for i, c in table.items()
                            if isinstance(i, int) and 0 <= i < len(names)}
              for device, table in opt._all_index_update_counts.items()}
    return {'optimizer': type(opt).__name__.lower(), 'num_update': int(opt.num_update),
            'begin_num_update': int(opt.begin_num_update), 'update_counts': counts,
            'states': states}


def _load_trainer_state(net, trainer, state, arrays, what):
    updaters = _updaters(trainer)
    opt = updaters[0].optimizer
    kind = type(opt).__name__.lower()
    if state.get('optimizer') != kind:
        raise CheckpointError('%s was trained with optimizer %s, this run uses %s: resume with '
                              'the optimizer it was trained with' % (what, state.get('optimizer'),
                                                                     kind))
    names = _param_names(net, trainer)
    index = {name: i for i, name in enumerate(names)}
    saved = state.get('states') or {}
    unknown = sorted(set(saved) - set(index))
    if unknown or not isinstance(saved, dict):
        raise CheckpointError('%s: optimizer states for parameters the network lacks: %s'
                              % (what, unknown[:4]))
    for updater in updaters:
        # each device's updater gets its own arrays; they move to the device on first use
        updater.states = {index[n]: _build_state(d, arrays, what) for n, d in saved.items()}
        updater.states_synced = dict.fromkeys(updater.states, False)
        updater.optimizer = opt
    try:
        opt.num_update = int(state['num_update'])
        opt.begin_num_update = int(state.get('begin_num_update', 0))
        counts = {
            int(device): {index[n]: int(c) for n, c in table.items() if n in index}
            for device, table in (state.get('update_counts') or {}).items()}
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError('%s: malformed optimizer position (%s)' % (what, err)) from None
    opt._all_index_update_counts = _counts_for_devices(counts, trainer)
    first = _device_ids(trainer)[0]
    opt._index_update_count = opt._all_index_update_counts[first]
    opt.param_dict = {i: p for i, p in enumerate(trainer._params)}


def _device_ids(trainer):
    """The device ids the trainer's updaters count updates under (MXNet's optimizer keys
    its per-parameter update counts by ``weight.context.device_id``)."""
    return [c.device_id for c in trainer._contexts] or [0]


def _counts_for_devices(counts, trainer):
    """The saved per-device update counts (``{device_id: {index: count}}``), with a table
    for every device of this run: a device the checkpoint has no table for (Horovod rank
    k trains on ``gpu(k)``, rank 0 wrote the file from ``gpu(0)``; other GPU ids on
    resume) gets a copy of the first saved one. Without it MXNet would count that
    device's updates from 0 again, and since ``num_update`` is their maximum, the lr
    schedule of the rank would stand still after the resume for as many steps as were
    trained before."""
    if not counts:
        return {d: {} for d in _device_ids(trainer)}
    template = counts[sorted(counts)[0]]
    out = dict(counts)
    for d in _device_ids(trainer):
        if d not in out:
            out[d] = dict(template)
    return out


# --------------------------------------------------------------------------------------
# files

def _net_arrays(net):
    return {name: p.data(p.list_ctx()[0]).asnumpy()
            for name, p in net._collect_params_with_prefix().items()}


def _array_bytes(arrays):
    with tempfile.TemporaryDirectory() as tmpdir:
        path = os.path.join(tmpdir, 'arrays')
        mx.nd.save(path, {k: mx.nd.array(v, dtype=v.dtype) for k, v in sorted(arrays.items())})
        with open(path, 'rb') as f:
            return f.read()


def save_checkpoint(path, net, trainer=None, meta=None, replicas=None):
    """Write ``net`` (+ ``trainer`` state and ``meta``, a JSON-able dict) to ``path``;
    ``replicas`` is a list (by replica) of ``{name: array}``, per-replica values of some
    parameters (see :func:`restore`)."""
    # Let pending operations finish: on CPU, BatchNorm's backward pass updates the running
    # statistics behind the engine's back (they are declared as its inputs), so reading
    # them right after a training step could see the previous values.
    mx.nd.waitall()
    arrays = {'params/' + k: v for k, v in _net_arrays(net).items()}
    for r, values in enumerate(replicas or ()):
        arrays.update(('replica/%d/%s' % (r, k), v) for k, v in values.items())
    trainer_state = _trainer_state(net, trainer, arrays) if trainer is not None else None
    blob = _array_bytes(arrays)
    doc = {'format': FORMAT, 'meta': dict(meta or {}), 'trainer': trainer_state,
           'arrays_sha256': hashlib.sha256(blob).hexdigest()}
    text = json.dumps(doc, sort_keys=True, default=_json_default).encode('utf-8')
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, 'x', zipfile.ZIP_STORED) as zf:
            zf.writestr(_META, text)
            zf.writestr(_ARRAYS, blob)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError('checkpoint metadata holds a %s' % type(value).__name__)


def load_checkpoint(path):
    """Read a checkpoint file: ``{'format', 'params': {name: numpy array}, 'trainer',
    'meta'}``. Raises :class:`CheckpointError` naming the file for anything unreadable."""
    try:
        with open(path, 'rb') as f:
            blob = f.read()
    except FileNotFoundError:
        raise CheckpointError('checkpoint %s does not exist' % path) from None
    except IsADirectoryError:
        raise CheckpointError('checkpoint %s is a directory' % path) from None
    except OSError as err:
        raise CheckpointError('cannot read checkpoint %s (%s)' % (path, err.strerror)) from None
    return load_checkpoint_bytes(blob, path)


def load_checkpoint_bytes(blob, what='checkpoint'):
    """:func:`load_checkpoint` for the bytes of a checkpoint file (``what`` names it)."""
    if blob.startswith(_PICKLE_MAGIC):
        raise CheckpointError(
            '%s is in the old pickled checkpoint format, which is not loaded because unpickling '
            'can run code; re-create it with this version (or convert it where you trust its '
            'origin: see docs/training.md)' % what)
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            if set(infos) != {_META, _ARRAYS}:
                raise CheckpointError('%s is not an hcnet checkpoint' % what)
            for info in infos.values():
                if info.file_size > len(blob) or info.compress_type != zipfile.ZIP_STORED:
                    raise CheckpointError('%s is corrupt (member sizes)' % what)
            if infos[_META].file_size > _MAX_META:
                raise CheckpointError('%s is not an hcnet checkpoint (metadata too large)' % what)
            doc = json.loads(zf.read(_META).decode('utf-8'))
            data = zf.read(_ARRAYS)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError,
            UnicodeDecodeError, MemoryError, OverflowError, RecursionError) as err:
        raise CheckpointError('%s is corrupt or truncated, or not an hcnet checkpoint (%s)'
                              % (what, str(err).splitlines()[0] if str(err) else
                                 type(err).__name__)) from None
    if not isinstance(doc, dict) or doc.get('format') != FORMAT:
        raise CheckpointError('%s is not an hcnet checkpoint (format %r)'
                              % (what, doc.get('format') if isinstance(doc, dict) else None))
    if hashlib.sha256(data).hexdigest() != doc.get('arrays_sha256'):
        raise CheckpointError('%s is corrupt: its arrays do not match their checksum' % what)
    try:
        loaded = mx.nd.load_frombuffer(data) if data else {}
    except (mx.base.MXNetError, MemoryError, OverflowError) as err:
        raise CheckpointError('%s is corrupt (%s)' % (what, str(err).strip().splitlines()[0]
                                                      if str(err).strip() else 'arrays'))
    if not isinstance(loaded, dict):
        raise CheckpointError('%s is corrupt (unnamed arrays)' % what)
    arrays = {k: v.asnumpy() for k, v in loaded.items()}
    params = {k[len('params/'):]: v for k, v in arrays.items() if k.startswith('params/')}
    if not params:
        raise CheckpointError('%s holds no parameters' % what)
    trainer = doc.get('trainer')
    if trainer is not None:
        if not isinstance(trainer, dict):
            raise CheckpointError('%s: malformed optimizer state' % what)
        trainer = dict(trainer, arrays={k: v for k, v in arrays.items()
                                        if k.startswith('state/')})
    replicas = {}
    for key, value in arrays.items():
        parts = key.split('/', 2)
        if parts[0] == 'replica' and len(parts) == 3 and parts[1].isdigit():
            replicas.setdefault(int(parts[1]), {})[parts[2]] = value
    meta = doc.get('meta')
    return {'format': FORMAT, 'params': params, 'trainer': trainer, 'replicas': replicas,
            'meta': meta if isinstance(meta, dict) else {}, 'path': what}


def restore(ckpt, net, trainer=None, rank=0):
    """Load a checkpoint dict into ``net`` (initialised, shapes known) and ``trainer``; the
    optimizer keeps its current settings (lr schedule, wd, ...), the checkpoint gives its
    position and per-parameter states. Where the checkpoint holds per-replica values (a
    mid-epoch checkpoint of a run with several devices or ranks), device ``d`` of process
    ``rank`` gets those of replica ``rank * devices + d``. Returns the metadata."""
    what = ckpt.get('path', 'checkpoint')
    params = net._collect_params_with_prefix()
    missing = sorted(set(params) - set(ckpt['params']))
    extra = sorted(set(ckpt['params']) - set(params))
    if missing or extra:
        raise CheckpointError('%s does not fit the network: missing %s, unexpected %s'
                              % (what, missing[:5], extra[:5]))
    for name, p in params.items():
        value = ckpt['params'][name]
        if tuple(p.shape) != value.shape:
            raise CheckpointError('%s: parameter %s has shape %s, the network %s'
                                  % (what, name, value.shape, p.shape))
        p.set_data(_host_array(value, p))
    _restore_replicas(ckpt.get('replicas') or {}, params, rank, what)
    if trainer is not None and ckpt.get('trainer') is not None:
        state = ckpt['trainer']
        _load_trainer_state(net, trainer, state, state.get('arrays') or {}, what)
    return ckpt.get('meta', {})


def _restore_replicas(replicas, params, rank, what):
    for name, p in params.items():
        ctxs = p.list_ctx()
        for d, ctx in enumerate(ctxs):
            value = replicas.get(rank * len(ctxs) + d, {}).get(name)
            if value is None:
                continue
            if tuple(p.shape) != value.shape:
                raise CheckpointError('%s: replica value of %s has shape %s, the network %s'
                                      % (what, name, value.shape, p.shape))
            p.data(ctx)[:] = _host_array(value, p).as_in_context(ctx)


def _host_array(value, param):
    """``value`` (a numpy array) as a CPU NDArray of ``param``'s dtype, cast on the host: a
    float16 checkpoint of a ``net.cast('float16')`` run loads into a float32 network. (A
    copy between the CPU and a GPU cannot change the dtype -- MXNet's ``Copy<cpu, gpu>``:
    "Source and target must have the same data type when copying across devices" -- so
    ``set_data`` with the checkpoint's dtype works on CPU only.)"""
    dtype = np.dtype(param.dtype)
    if value.dtype != dtype and value.dtype.kind == 'f' and dtype.kind == 'f':
        value = value.astype(dtype)
    return mx.nd.array(value, dtype=value.dtype)
