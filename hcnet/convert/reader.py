"""Read a PyTorch state dict as numpy arrays, without torch and without running code.

:func:`read_state_dict` takes

* a ``.safetensors`` file (the ``safetensors`` package's numpy API), or
* a PyTorch ``torch.save`` file (``.pth`` / ``.pt`` / ``.bin``): the zip archive every
  PyTorch since 1.6 writes, or the older "legacy" single-stream layout.

A PyTorch file is a pickle. Unpickling runs whatever callables the pickle names, so
:class:`RestrictedUnpickler` names none of Python's: its ``find_class`` knows only the
globals a state dict needs, the ones ``torch.load(weights_only=True)`` allows for plain
tensors -- ``torch._utils._rebuild_tensor_v2`` (and ``_rebuild_tensor``,
``_rebuild_parameter``), the storage types (``torch.FloatStorage``, ...) and
``collections.OrderedDict`` -- each mapped to a numpy stand-in defined here; torch
itself is never imported. Any other
global (``os.system``, ``builtins.eval``, a class of the saving program, ...) ends the
read with :class:`ReadError` before anything of it runs. Tensor data is read from the
archive's records (or the legacy stream) into numpy arrays, checked against the sizes
the pickle declares.

Everything that cannot be read is one :class:`ReadError` line naming the file.
"""
import collections
import io
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

__all__ = ['ReadError', 'RestrictedUnpickler', 'read_state_dict', 'read_torch_file',
           'read_safetensors', 'ALLOWED_GLOBALS']


class ReadError(ValueError):
    """The file cannot be read as a state dict (one line saying why)."""


#: storage type name -> numpy dtype of its elements ('bfloat16': read as uint16, widened)
_STORAGE_DTYPES = {
    'DoubleStorage': np.float64, 'FloatStorage': np.float32, 'HalfStorage': np.float16,
    'BFloat16Storage': 'bfloat16', 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_, 'UntypedStorage': np.uint8,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001
#: a header longer than this is not a safetensors header
_MAX_SAFETENSORS_HEADER = 100 << 20


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and its kin: only its element type matters."""
    __slots__ = ('name', 'dtype')

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError('the pickle calls the storage type %s' % self.name)

    def __reduce__(self):
        raise TypeError('not picklable')


class _Storage:
    """A storage's elements (a 1-D numpy array), read when the pickle refers to it."""
    __slots__ = ('array', 'name')

    def __init__(self, array, name):
        self.array, self.name = array, name


class _Tensor:
    """What ``_rebuild_tensor_v2`` gives back: a numpy array, and nothing a pickle could
    use (no attributes to set, no state to build)."""
    __slots__ = ('array',)

    def __init__(self, array):
        self.array = array

    def __setstate__(self, state):
        raise pickle.UnpicklingError('the pickle sets state on a tensor')


def _element_dtype(dtype):
    return np.dtype(np.uint16) if dtype == 'bfloat16' else np.dtype(dtype)


def _widen(array, dtype):
    """bfloat16 elements (read as uint16) as float32; anything else unchanged."""
    if dtype == 'bfloat16':
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _as_ints(value, what):
    if isinstance(value, bool) or not isinstance(value, int):
        raise pickle.UnpicklingError('tensor %s is not an integer: %r' % (what, value))
    return value


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """numpy stand-in of ``torch._utils._rebuild_tensor_v2``: a strided view of the
    storage's elements, copied into a C-contiguous array."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError('a tensor is rebuilt from something that is not a storage')
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) \
            or len(size) != len(stride):
        raise pickle.UnpicklingError('a tensor has a malformed size / stride')
    offset = _as_ints(storage_offset, 'offset')
    size = [_as_ints(s, 'size') for s in size]
    stride = [_as_ints(s, 'stride') for s in stride]
    data = storage.array
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError('a tensor has a negative size, stride or offset')
    numel = int(np.prod(size, dtype=np.int64)) if size else 1
    if numel == 0:
        return _Tensor(np.zeros(size, dtype=data.dtype))
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= data.size or numel > data.size:
        raise pickle.UnpicklingError('a tensor of shape %s reaches outside its storage (%d '
                                     'elements)' % (tuple(size), data.size))
    view = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=[s * data.itemsize for s in stride], writeable=False)
    return _Tensor(np.array(view, copy=True, order='C'))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is its tensor."""
    if not isinstance(data, _Tensor):
        raise pickle.UnpicklingError('a parameter is rebuilt from something that is not a '
                                     'tensor')
    return data


def _ordered_dict(*args):
    """``collections.OrderedDict()`` as a pickle calls it: empty, or from pairs."""
    if len(args) > 1:
        raise pickle.UnpicklingError('OrderedDict called with %d arguments' % len(args))
    return collections.OrderedDict(*args)


def _allowed_globals():
    allowed = {
        ('collections', 'OrderedDict'): _ordered_dict,
        ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
        ('torch._utils', '_rebuild_tensor'): _rebuild_tensor_v2,       # PyTorch < 1.0
        ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    }
    for name, dtype in _STORAGE_DTYPES.items():
        allowed[('torch', name)] = _StorageType(name, dtype)
        if name != 'UntypedStorage':
            allowed[('torch.cuda', name)] = _StorageType(name, dtype)   # saved from a GPU
    return allowed


#: (module, name) -> stand-in: every global a state dict's pickle may name
ALLOWED_GLOBALS = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for state dicts that never runs code of the pickle's choosing.

    ``find_class`` maps the few globals of :data:`ALLOWED_GLOBALS` to numpy stand-ins
    and refuses every other; ``persistent_load`` turns the pickle's storage references
    into :class:`_Storage` objects through ``load_storage(key, dtype, numel, pid)``
    (``rebuild`` replaces the tensor stand-in, for files whose data follows the pickle).
    """

    def __init__(self, file, load_storage=None, rebuild=None):
        super().__init__(file)
        self._load_storage = load_storage
        self._rebuild = rebuild

    def find_class(self, module, name):
        if self._rebuild is not None and module == 'torch._utils' \
                and name in ('_rebuild_tensor', '_rebuild_tensor_v2'):
            return self._rebuild
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(
                'it names the global %s.%s, which is not a tensor or a plain container; '
                'refusing to unpickle it' % (module, name)) from None

    def persistent_load(self, pid):
        if self._load_storage is None:
            raise pickle.UnpicklingError('unexpected persistent id %r' % (pid,))
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError('malformed persistent id')
        kind = pid[0].decode('ascii') if isinstance(pid[0], bytes) else pid[0]
        if kind != 'storage' or len(pid) < 5 or not isinstance(pid[1], _StorageType):
            raise pickle.UnpicklingError('persistent id %r is not a tensor storage'
                                         % (kind,))
        numel = _as_ints(pid[4], 'storage size')
        key = pid[2].decode('ascii') if isinstance(pid[2], bytes) else pid[2]
        if not isinstance(key, str) or numel < 0:
            raise pickle.UnpicklingError('malformed storage reference')
        return self._load_storage(key, pid[1].dtype, numel, pid)


def _unwrap(obj, path):
    """The state dict: {name: numpy array}, from the unpickled object (a state dict, or a
    dict holding one under ``state_dict`` / ``model``)."""
    if isinstance(obj, dict) and obj and not all(isinstance(v, _Tensor) for v in obj.values()):
        for key in ('state_dict', 'model'):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, _Tensor)
                                                         for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj:
        raise ReadError('%s holds no state dict (a mapping of names to tensors), but %s'
                        % (path, type(obj).__name__))
    out = collections.OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ReadError('%s: state dict key %r is not a string' % (path, key))
        if not isinstance(value, _Tensor):
            raise ReadError('%s: %s is a %s, not a tensor' % (path, key, type(value).__name__))
        out[key] = value.array
    return out


def _unpickle(stream, path, load_storage, rebuild=None):
    try:
        return RestrictedUnpickler(stream, load_storage, rebuild).load()
    except ReadError:
        raise
    except Exception as err:   # noqa: BLE001 -- a malformed pickle fails in many ways; none runs code
        line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ReadError('%s cannot be read as a state dict: %s' % (path, line)) from None


def _read_zip(path):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ReadError('%s is not a readable zip archive (%s)' % (path, err)) from None
    with zf:
        names = zf.namelist()
        pkls = [n for n in names if n == 'data.pkl' or n.endswith('/data.pkl')]
        if any(n == 'constants.pkl' or n.endswith('/constants.pkl') for n in names):
            raise ReadError('%s is a TorchScript archive, not a state dict (save the '
                            "model's state_dict() instead)" % path)
        if len(pkls) != 1:
            raise ReadError('%s is a zip archive but not a PyTorch file (%d data.pkl records)'
                            % (path, len(pkls)))
        prefix = pkls[0][:-len('data.pkl')]
        order = '<'
        if prefix + 'byteorder' in names:
            order = '>' if zf.read(prefix + 'byteorder').strip() == b'big' else '<'
        storages = {}

        def load_storage(key, dtype, numel, pid):
            if key in storages:
                return storages[key]
            record = prefix + 'data/' + key
            if '/' in key or '..' in key or record not in names:
                raise pickle.UnpicklingError('storage %r has no record in the archive' % key)
            item = _element_dtype(dtype).newbyteorder(order)
            want = numel * item.itemsize
            if zf.getinfo(record).file_size != want:
                raise pickle.UnpicklingError('storage %r holds %d bytes, the pickle says %d'
                                             % (key, zf.getinfo(record).file_size, want))
            data = np.frombuffer(zf.read(record), dtype=item).astype(item.newbyteorder('='))
            storages[key] = _Storage(_widen(data, dtype), key)
            return storages[key]

        try:
            with zf.open(pkls[0]) as f:
                obj = _unpickle(io.BytesIO(f.read()), path, load_storage)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as err:
            raise ReadError('%s: a record of the archive cannot be read (%s)'
                            % (path, err)) from None
    return _unwrap(obj, path)


def _read_legacy(path):
    """PyTorch's pre-1.6 layout: magic, protocol, system info, the state dict's pickle,
    the list of storage keys, then each storage (element count, then its elements)."""
    with open(path, 'rb') as f:
        try:
            magic = RestrictedUnpickler(f).load()
        except Exception:    # noqa: BLE001 -- whatever it is, it is no legacy file
            magic = None
        if magic != _LEGACY_MAGIC:
            raise ReadError('%s is neither a PyTorch file (zip or legacy) nor a safetensors '
                            'file' % path)
        try:
            protocol = RestrictedUnpickler(f).load()
            sys_info = RestrictedUnpickler(f).load()
        except Exception as err:    # noqa: BLE001
            raise ReadError('%s: corrupt legacy PyTorch header (%s)' % (path, err)) from None
        if protocol != _LEGACY_PROTOCOL:
            raise ReadError('%s: legacy PyTorch protocol %r is not %d'
                            % (path, protocol, _LEGACY_PROTOCOL))
        order = '<' if not isinstance(sys_info, dict) or sys_info.get('little_endian', True) \
            else '>'
        roots, views = {}, []

        def load_storage(key, dtype, numel, pid):
            if key not in roots:
                roots[key] = [dtype, numel, _Storage(None, key)]
            elif roots[key][0] != dtype:
                raise pickle.UnpicklingError('storage %r is read as two element types' % key)
            view = pid[5] if len(pid) > 5 else None
            if view is None:
                return roots[key][2]
            if not isinstance(view, tuple) or len(view) != 3:
                raise pickle.UnpicklingError('malformed storage view')
            storage = _Storage(None, '%s[view]' % key)
            views.append((storage, key, _as_ints(view[1], 'view offset'),
                          _as_ints(view[2], 'view size')))
            return storage

        # a tensor can be rebuilt only once its storage is read, which follows the pickle:
        # unpickle with placeholders, then fill them in
        pending = []

        def deferred(*args):
            pending.append((_Tensor(None), args))
            return pending[-1][0]

        obj = _unpickle(f, path, load_storage, rebuild=deferred)
        try:
            keys = RestrictedUnpickler(f).load()
        except Exception as err:    # noqa: BLE001
            raise ReadError('%s: corrupt legacy storage list (%s)' % (path, err)) from None
        if not isinstance(keys, list) or set(keys) != set(roots):
            raise ReadError('%s: the storage list does not match the tensors' % path)
        for key in keys:
            dtype, numel, storage = roots[key]
            item = _element_dtype(dtype).newbyteorder(order)
            head = f.read(8)
            if len(head) != 8:
                raise ReadError('%s is truncated (storage %s)' % (path, key))
            count = struct.unpack(order + 'q', head)[0]
            if count != numel:
                raise ReadError('%s: storage %s holds %d elements, the pickle says %d'
                                % (path, key, count, numel))
            raw = f.read(numel * item.itemsize)
            if len(raw) != numel * item.itemsize:
                raise ReadError('%s is truncated (storage %s)' % (path, key))
            storage.array = _widen(np.frombuffer(raw, dtype=item).astype(
                item.newbyteorder('=')), dtype)
    for storage, key, offset, size in views:
        base = roots[key][2].array
        if offset < 0 or size < 0 or offset + size > base.size:
            raise ReadError('%s: a storage view reaches outside storage %s' % (path, key))
        storage.array = base[offset:offset + size]
    for placeholder, args in pending:
        try:
            placeholder.array = _rebuild_tensor_v2(*args).array
        except (pickle.UnpicklingError, TypeError) as err:
            raise ReadError('%s cannot be read as a state dict: %s' % (path, err)) from None
    return _unwrap(obj, path)


def read_torch_file(path):
    """The state dict of a ``torch.save`` file (zip or legacy), as {name: numpy array},
    in the file's order. Raises :class:`ReadError`."""
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _read_legacy(path)


def _is_safetensors(path):
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    size = struct.unpack('<Q', head[:8])[0]
    return 2 <= size <= _MAX_SAFETENSORS_HEADER and head[8:9] == b'{'


def read_safetensors(path):
    """The tensors of a ``.safetensors`` file, as {name: numpy array} (safetensors' numpy
    API; no torch). Raises :class:`ReadError`."""
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError:
        raise ReadError('reading %s needs the safetensors package (pip install safetensors, '
                        'or pip install "hcnet[convert]")' % path) from None
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ReadError('%s is not a readable safetensors file (%s)' % (path, line)) from None
    return collections.OrderedDict(sorted(tensors.items()))


def read_state_dict(path):
    """{name: numpy array} of ``path``: a ``.safetensors`` file or a ``torch.save`` file
    (``.pth``, ``.pt``, ``.bin``), told apart by their contents. Raises :class:`ReadError`
    (one line) for a file that is missing, of another kind, corrupt, or whose pickle names
    anything but tensors and plain containers."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ReadError('%s does not exist' % path)
    try:
        if _is_safetensors(path):
            return read_safetensors(path)
        return read_torch_file(path)
    except OSError as err:
        raise ReadError('cannot read %s (%s)' % (path, err.strerror or err)) from None
