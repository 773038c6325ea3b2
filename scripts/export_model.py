#!/usr/bin/env python
"""Export a network for deployment: MXNet symbol + params and ONNX, checked against Gluon.

    python scripts/export_model.py hc_m10_i10 --out export/               # published weights
    python scripts/export_model.py hc_m10_i10 --pretrained w.params --out export/
    python scripts/export_model.py --checkpoint runs/hc_m10_i10/best.ckpt --out export/
    python scripts/export_model.py hc_m5_i10 --fast --out export/      # faster inference graph

Writes, in OUT (STEM defaults to the model name):

* STEM-symbol.json, STEM-0000.params  -- ``HybridBlock.export``; load them with
  ``gluon.SymbolBlock.imports(STEM-symbol.json, ['data'], STEM-0000.params)``;
* STEM.onnx  -- ``mx.onnx.export_model``, opset 13, input ``data`` of shape
  (batch, 3, S, S) with a dynamic batch dimension, output ``logits`` (batch, classes);
* STEM.json  -- what the files are: model, classes (names when known), input
  shape, normalisation mean / std, sha1 of the weights, the checks below.

Checks, on a seeded random batch: the reloaded symbol + params and the ONNX model
(run with onnxruntime; without onnxruntime only ``onnx.checker`` runs and STEM.json
says so) must reproduce the Gluon outputs within --tolerance (max |difference|
relative to max(1, max |output|)). A failed check exits with code 1; bad input
(unknown name, unreadable checkpoint, no published weights) with code 2, one line
on stderr.

MXNet 1.9.1's ONNX exporter cannot translate a Reshape whose shape uses the
special codes -2 / -3 / -4 (outside a few hard-coded patterns); the channel
shuffle of Inverted Shuffle Blocks uses them. While exporting, this script adds a
general translation of those codes (Shape / Slice / Concat arithmetic) and
uses it only where MXNet's own converter gives up.
"""
import argparse
import contextlib
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

OPSET = 13
OUTPUT_NAME = 'logits'
DEFAULT_MEAN = [0.485, 0.456, 0.406]
DEFAULT_STD = [0.229, 0.224, 0.225]


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
    tmp = onnx_file + '.%d.tmp' % os.getpid()
    try:
        with reshape_codes_converter():
            mx.onnx.export_model(symbol_file, params_file, [shape], [np.float32], tmp,
                                 dynamic=dynamic_batch,
                                 dynamic_input_shapes=[(None,) + shape[1:]] if dynamic_batch
                                 else None)
        model = onnx.load(tmp)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
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
    tmp = onnx_file + '.%d.tmp' % os.getpid()
    try:
        onnx.save(model, tmp)
        os.replace(tmp, onnx_file)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return model


def run_onnx(onnx_file, x):
    """Outputs of ``onnx_file`` on ``x`` with onnxruntime, or None if it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# --------------------------------------------------------------------------------------
# building the network

def build(name=None, checkpoint=None, pretrained='true', classes=None, root=None):
    """(net, info) for a zoo name (published / given / random weights) or a checkpoint."""
    import hcnet
    from hcnet.model_store import _TAG_RE, PretrainedError, find_entry
    from hcnet.model_zoo import is_model
    info = {}
    if checkpoint:
        from hcnet.checkpoint import CheckpointError, load_checkpoint, restore
        try:
            ckpt = load_checkpoint(checkpoint)
        except CheckpointError as err:
            raise ExportError(str(err))
        meta = ckpt.get('meta') or {}
        config = meta.get('config') or {}
        name = name or meta.get('model')
        if not name or not is_model(name):
            raise ExportError('checkpoint %s: model %r is not an hcnet model-zoo name'
                              % (checkpoint, name))
        ck_classes = meta.get('classes')
        if classes is not None and ck_classes is not None and classes != ck_classes:
            raise ExportError('--classes %d, but the checkpoint has %d classes'
                              % (classes, ck_classes))
        kwargs = dict((config.get('model') or {}).get('kwargs') or {})
        kwargs['classes'] = ck_classes or classes or 1000
        net = hcnet.get_model(name, **kwargs)
        try:
            restore(ckpt, net)
        except CheckpointError as err:
            raise ExportError(str(err))
        info.update(source='checkpoint', checkpoint=os.path.abspath(checkpoint),
                    epoch=meta.get('epoch'), top1=meta.get('top1'), config=config)
        return net, name, info
    if not is_model(name):
        raise ExportError('%r is not an hcnet model-zoo name' % name)
    value = {'true': True, 'none': False, 'false': False, 'random': False}.get(
        str(pretrained).lower(), pretrained)
    try:
        if value is True or (isinstance(value, str) and _TAG_RE.match(value)
                             and not os.path.exists(value)):
            try:
                entry = find_entry(name, None if value is True else value, root=root)
            except PretrainedError:
                entry = None
            if entry is not None:
                classes = classes or entry.get('classes')
                info['config'] = entry.get('config') or {}
        net = hcnet.get_model(name, classes=classes or 1000, pretrained=value, root=root)
    except PretrainedError as err:
        raise ExportError(str(err))
    info.update(getattr(net, 'pretrained_info', None) or {'source': 'random initialisation'})
    info.pop('entry', None)
    return net, name, info


# --------------------------------------------------------------------------------------

def _max_rel(a, b):
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


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
    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(out_dir, stem)
    shape = (batch, 3, input_size, input_size)
    x = mx.nd.array(np.random.RandomState(seed).randn(*shape).astype('float32'))
    net.hybridize(static_alloc=False)
    ref = net(x).asnumpy()
    if not np.isfinite(ref).all():
        raise CheckError('the Gluon network outputs non-finite values')
    patch = None
    if fast:
        from hcnet.deploy import ORT_OPTIONS, patch_onnx
        from hcnet.deploy import export as deploy_export
        symbol_file, params_file = deploy_export(net, prefix, input_size, **ORT_OPTIONS)
        patch = patch_onnx
    else:
        net.export(prefix, epoch=0)
        symbol_file, params_file = prefix + '-symbol.json', prefix + '-0000.params'

    with warnings.catch_warnings():      # "Cannot decide type for ... data": it is float32
        warnings.simplefilter('ignore', UserWarning)
        sym = gluon.SymbolBlock.imports(symbol_file, ['data'], params_file, ctx=mx.cpu())
    sym_diff = _max_rel(sym(x).asnumpy(), ref)
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
    report['mean'] = data_cfg.get('mean', DEFAULT_MEAN)
    report['std'] = data_cfg.get('std', DEFAULT_STD)
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
            onnx_diff = _max_rel(got, ref)
            report['checks']['onnx'] = 'onnxruntime %s' % onnxruntime.__version__
            report['checks']['onnx_max_rel_diff'] = onnx_diff
            if onnx_diff > tolerance:
                raise CheckError('the ONNX model differs from Gluon by %.3g (> %g)'
                                 % (onnx_diff, tolerance))
    tmp = prefix + '.json.%d.tmp' % os.getpid()
    with open(tmp, 'w') as f:
        json.dump(report, f, indent=1, default=str)
        f.write('\n')
    os.replace(tmp, prefix + '.json')
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument('name', nargs='?', help='model-zoo name (weights: see --pretrained)')
    parser.add_argument('--checkpoint', help='a training checkpoint (.ckpt) instead of NAME')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--pretrained', default='true',
                        help="NAME's weights: true (published), a sha1 prefix, a .params path, "
                             "or 'random' (untrained, to test a deployment pipeline)")
    parser.add_argument('--input-size', type=int, default=None,
                        help="input height = width (default: the training config's, else 224)")
    parser.add_argument('--classes', type=int, default=None,
                        help="number of classes (default: the weights')")
    parser.add_argument('--root', default=None, help='weights cache (default $MXNET_HOME/models)')
    parser.add_argument('--stem', default=None, help='output file stem (default: the name)')
    parser.add_argument('--batch', type=int, default=2, help='batch size of the check')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='max |difference| / max(1, max |output|) allowed (default 1e-4)')
    parser.add_argument('--no-onnx', action='store_true', help='symbol + params only')
    parser.add_argument('--fast', action='store_true',
                        help='export the hcnet.deploy inference graph (folded BN, idle '
                             'channels not moved, padded for ONNX Runtime), for this '
                             'input size only')
    args = parser.parse_args(argv)
    if bool(args.name) == bool(args.checkpoint):
        parser.error('give a model NAME or --checkpoint, not both')
    try:
        net, name, info = build(args.name, args.checkpoint, args.pretrained, args.classes,
                                args.root)
        size = args.input_size or ((info.get('config') or {}).get('data') or {}).get(
            'input_size') or 224
        report = export(net, name, args.out, size, args.batch, args.tolerance,
                        not args.no_onnx, args.stem, info, fast=args.fast)
    except ExportError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    except CheckError as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    checks = report['checks']
    print('exported %s (%s classes, input %s) to %s: %s' % (
        name, len(report['classes']) if isinstance(report['classes'], list) else report['classes'],
        report['input_shape'], args.out, ', '.join(sorted(report['files'].values()))))
    print('symbol max rel diff %.3g%s' % (
        checks['symbol_max_rel_diff'],
        '' if 'onnx' not in checks else '; ONNX: %s%s' % (
            checks['onnx'], ' max rel diff %.3g' % checks['onnx_max_rel_diff']
            if 'onnx_max_rel_diff' in checks else '')))
    return 0


if __name__ == '__main__':
    sys.exit(main())
