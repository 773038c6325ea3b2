"""ONNX export of a network (the Gluon graph or the deploy graph), checked against Gluon.

:func:`export` writes, in ``out_dir`` (``stem`` defaults to the model name):

* ``STEM-symbol.json``, ``STEM-0000.params`` -- ``HybridBlock.export`` (or the deploy
  graph's); load them with ``gluon.SymbolBlock.imports(STEM-symbol.json, ['data'],
  STEM-0000.params)``;
* ``STEM.onnx`` -- ``mx.onnx.export_model``, opset 13, input ``data`` of shape
  (batch, 3, S, S) with a dynamic batch dimension, output ``logits`` (batch, classes);
* ``STEM.json`` -- what the files are: model, classes (names when known), input shape,
  normalisation mean / std (the model's :class:`~hcnet.models.ModelCfg` unless the
  training config says otherwise), sha1 of the weights, the checks.

Checks, on a seeded random batch: the reloaded symbol + params and the ONNX model (run
with onnxruntime; without it only ``onnx.checker`` runs and STEM.json says so) must
reproduce the Gluon outputs within ``tolerance`` (:func:`hcnet.deploy.max_rel_diff`).

MXNet 1.9.1's ONNX exporter cannot translate a Reshape whose shape uses the special codes
-2 / -3 / -4 (outside a few hard-coded patterns); the channel shuffle of Inverted Shuffle
Blocks uses them. While exporting, a general translation of those codes (Shape / Slice /
Concat arithmetic) is registered and used only where MXNet's own converter gives up.
"""
import contextlib
import json
import os
import warnings

import numpy as np

from ..fileio import atomic_path, remove_quietly, tmp_name, write_text
from ..models.cfg import IMAGENET_CFG
from .graph import max_rel_diff

__all__ = ['OPSET', 'OUTPUT_NAME', 'ExportError', 'CheckError', 'export_onnx', 'run_onnx',
           'export', 'reshape_codes_converter']

OPSET = 13
OUTPUT_NAME = 'logits'


class ExportError(Exception):
    """Bad input: exit code 2."""


class CheckError(Exception):
    """An exported model does not reproduce the Gluon outputs: exit code 1."""


# --------------------------------------------------------------------------------------
# ONNX: Reshape with MXNet's special shape codes

def _reshape_codes_nodes(name, data, targ_shape, initializer):
    """ONNX nodes computing MXNet's ``reshape(data, shape=targ_shape)`` (reverse=False).

    MXNet's codes, with ``src`` walking the input dimensions: ``d > 0`` (that
    size, src+1), ``0`` (copy dim src, src+1), ``-1`` (inferred, src+1), ``-2``
    (copy all remaining dims), ``-3`` (dim src * dim src+1, src+2), ``-4 a b``
    (split dim src into a, b; one may be -1; src+1).
    """
    from onnx.helper import make_node, make_tensor
    from onnx import TensorProto

    consts = {}

    def const(values):
        key = tuple(values)
        if key not in consts:
            cname = '%s_c%d' % (name, len(consts))
            initializer.append(make_tensor(cname, TensorProto.INT64, [len(values)],
                                           [int(v) for v in values]))
            consts[key] = cname
        return consts[key]

    nodes = [make_node('Shape', [data], [name + '_shape'])]
    counter = [0]

    def fresh(tag):
        counter[0] += 1
        return '%s_%s%d' % (name, tag, counter[0])

    def dims(start, end=None):
        out = fresh('dims')
        ends = const([end if end is not None else 2 ** 62])
        nodes.append(make_node('Slice', [name + '_shape', const([start]), ends, const([0])],
                               [out]))
        return out

    def binary(op, a, b):
        out = fresh(op.lower())
        nodes.append(make_node(op, [a, b], [out]))
        return out

    pieces, src, i = [], 0, 0
    targ = list(targ_shape)
    while i < len(targ):
        d = targ[i]
        if d > 0 or d == -1:
            pieces.append(const([d]))
            src += 1
        elif d == 0:
            pieces.append(dims(src, src + 1))
            src += 1
        elif d == -2:
            pieces.append(dims(src))
            src = None          # nothing may follow (MXNet copies *all* remaining dims)
        elif d == -3:
            pieces.append(binary('Mul', dims(src, src + 1), dims(src + 1, src + 2)))
            src += 2
        elif d == -4:
            a, b = targ[i + 1], targ[i + 2]
            i += 2
            whole = dims(src, src + 1)
            if a == -1:
                pieces += [binary('Div', whole, const([b])), const([b])]
            elif b == -1:
                pieces += [const([a]), binary('Div', whole, const([a]))]
            else:
                pieces += [const([a]), const([b])]
            src += 1
        else:
            raise AttributeError('Reshape: shape code %d is not an MXNet reshape code' % d)
        if src is None and i + 1 < len(targ):
            raise AttributeError('Reshape: -2 must be the last shape code')
        i += 1
    nodes.append(make_node('Concat', pieces, [name + '_targ'], axis=0))
    nodes.append(make_node('Reshape', [data, name + '_targ'], [name], name=name))
    return nodes


@contextlib.contextmanager
def reshape_codes_converter():
    """Let MXNet's ONNX exporter translate Reshape shapes with -2 / -3 / -4 (see module doc)."""
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    from mxnet.onnx.mx2onnx._op_translations import _op_translations_opset12 as ops12
    original = ops12.convert_reshape
    registry = MXNetGraph.registry_.setdefault(OPSET, {})
    before = registry.get('Reshape')

    def convert_reshape(node, **kwargs):
        try:
            return original(node, **kwargs)
        except AttributeError as err:
            if 'not supported' not in str(err):
                raise
        name, inputs, attrs = ops12.get_inputs(node, kwargs)
        if attrs.get('reverse', 'False') == 'True':
            raise AttributeError('Reshape: reverse=True with codes -2/-3/-4 is not supported')
        targ = ops12.convert_string_to_list(attrs['shape'])
        return _reshape_codes_nodes(name, inputs[0], targ, kwargs['initializer'])

    registry['Reshape'] = convert_reshape
    try:
        yield
    finally:
        if before is None:
            registry.pop('Reshape', None)
        else:
            registry['Reshape'] = before


def export_onnx(symbol_file, params_file, onnx_file, input_shape, dynamic_batch=True,
                patch=None):
    """``mx.onnx.export_model`` (with the Reshape fallback), tidied to opset 13 and checked."""
    import mxnet as mx
    import onnx
    from onnx import helper
    shape = tuple(input_shape)
    tmp = tmp_name(onnx_file)                 # MXNet's raw export: read back, then removed
    try:
        with reshape_codes_converter():
            mx.onnx.export_model(symbol_file, params_file, [shape], [np.float32], tmp,
                                 dynamic=dynamic_batch,
                                 dynamic_input_shapes=[(None,) + shape[1:]] if dynamic_batch
                                 else None)
        model = onnx.load(tmp)
    finally:
        remove_quietly(tmp)
    # the converters emit opset-13 nodes; the exporter labels the model with the newest
    # opset the installed onnx knows -- label it with what it is
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid('', OPSET)])
    model.ir_version = min(model.ir_version, 7)          # what opset 13 came with
    # a stable output name for deployment code (MXNet's depends on how many blocks were built)
    old = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
        node.input[:] = [OUTPUT_NAME if i == old else i for i in node.input]
    model.graph.output[0].name = OUTPUT_NAME
    # weights are initializers, not inputs (onnxruntime warns about each one otherwise)
    inits = {t.name for t in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    if patch is not None:
        patch(model)
    onnx.checker.check_model(model)
    with atomic_path(onnx_file) as tmp:
        onnx.save(model, tmp)
    return model


def run_onnx(onnx_file, x):
    """Outputs of ``onnx_file`` on ``x`` with onnxruntime, or None if it is not installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    from .runtime import ort_session
    session = ort_session(onnx_file)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@contextlib.contextmanager
def _writing(out_dir):
    """MXNet reports a failed write (a full disk) as MXNetError: make it the OSError it is."""
    import mxnet as mx
    try:
        yield
    except mx.base.MXNetError as err:
        text = str(err)
        if 'Write incomplete' in text or 'fwrite' in text or 'open' in text.lower():
            raise OSError('%s: the disk is full or not writable' % out_dir) \
                from None
        raise


def export(net, name, out_dir, input_size=224, batch=2, tolerance=1e-4, onnx_export=True,
           stem=None, info=None, seed=0, fast=False):
    """Export ``net`` into ``out_dir`` and check the files; return the STEM.json dict.

    ``fast``: export :mod:`hcnet.deploy`'s inference graph (BatchNorm folded, idle
    channels left in place, channel counts padded for ONNX Runtime's blocked layout)
    instead of the Gluon graph; it is built for this ``input_size``.
    """
    import mxnet as mx
    from mxnet import gluon
    stem = stem or name
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise ExportError('cannot create the output directory %s (%s)'
                          % (out_dir, err.strerror or err))
    if not os.path.isdir(out_dir):
        raise ExportError('--out %s is not a directory' % out_dir)
    prefix = os.path.join(out_dir, stem)
    shape = (batch, 3, input_size, input_size)
    x = mx.nd.array(np.random.RandomState(seed).randn(*shape).astype('float32'))
    net.hybridize(static_alloc=False)
    ref = net(x).asnumpy()
    if not np.isfinite(ref).all():
        raise CheckError('the Gluon network outputs non-finite values')
    patch = None
    if fast:
        from .graph import ORT_OPTIONS, patch_onnx
        from .graph import export as deploy_export
        with _writing(out_dir):
            symbol_file, params_file = deploy_export(net, prefix, input_size, **ORT_OPTIONS)
        patch = patch_onnx
    else:
        symbol_file, params_file = prefix + '-symbol.json', prefix + '-0000.params'
        scratch = tmp_name(prefix)           # HybridBlock.export names its files itself
        try:
            with _writing(out_dir):
                net.export(scratch, epoch=0)
            os.replace(scratch + '-symbol.json', symbol_file)
            os.replace(scratch + '-0000.params', params_file)
        finally:
            remove_quietly(scratch + '-symbol.json')
            remove_quietly(scratch + '-0000.params')

    with warnings.catch_warnings():      # "Cannot decide type for ... data": it is float32
        warnings.simplefilter('ignore', UserWarning)
        sym = gluon.SymbolBlock.imports(symbol_file, ['data'], params_file, ctx=mx.cpu())
    sym_diff = max_rel_diff(sym(x).asnumpy(), ref)
    report = {'model': name, 'classes': getattr(net, 'classes', None),
              'synset': getattr(net, 'synset', None),
              'input_shape': [None, 3, input_size, input_size], 'input_name': 'data',
              'graph': 'hcnet.deploy (ORT_OPTIONS)' if fast else 'gluon',
              'layout': 'NCHW, RGB scaled to [0, 1], then (x - mean) / std',
              'files': {'symbol': os.path.basename(symbol_file),
                        'params': os.path.basename(params_file)},
              'checks': {'batch': batch, 'tolerance': tolerance, 'symbol_max_rel_diff': sym_diff}}
    config = (info or {}).get('config') or {}
    data_cfg = config.get('data') or {}
    defaults = getattr(net, 'default_cfg', None) or IMAGENET_CFG
    report['mean'] = data_cfg.get('mean') or list(defaults.mean)
    report['std'] = data_cfg.get('std') or list(defaults.std)
    report['weights'] = {k: v for k, v in (info or {}).items() if k != 'config'}
    if sym_diff > tolerance:
        raise CheckError('the exported symbol + params differ from Gluon by %.3g (> %g)'
                         % (sym_diff, tolerance))
    if onnx_export:
        import onnx
        onnx_file = prefix + '.onnx'
        try:
            model = export_onnx(symbol_file, params_file, onnx_file, shape, patch=patch)
        except (AttributeError, NotImplementedError) as err:
            raise CheckError('MXNet\'s ONNX exporter cannot translate %s: %s (symbol + params '
                             'were written; --no-onnx skips ONNX)' % (name, err))
        report['files']['onnx'] = os.path.basename(onnx_file)
        report['output_name'] = model.graph.output[0].name
        report['onnx'] = {'opset': OPSET, 'onnx_version': onnx.__version__,
                          'ops': sorted({n.op_type for n in model.graph.node})}
        got = run_onnx(onnx_file, x.asnumpy())
        if got is None:
            report['checks']['onnx'] = 'onnx.checker only (onnxruntime is not installed)'
        else:
            import onnxruntime
            onnx_diff = max_rel_diff(got, ref)
            report['checks']['onnx'] = 'onnxruntime %s' % onnxruntime.__version__
            report['checks']['onnx_max_rel_diff'] = onnx_diff
            if onnx_diff > tolerance:
                raise CheckError('the ONNX model differs from Gluon by %.3g (> %g)'
                                 % (onnx_diff, tolerance))
    write_text(prefix + '.json', json.dumps(report, indent=1, default=str) + '\n')
    return report


