"""Export a network for deployment: MXNet symbol + params and ONNX, checked against Gluon.

    hcnet export hc_m10_i10 --out export/                     # published weights
    hcnet export hc_m10_i10 --pretrained w.params --out export/
    hcnet export --checkpoint runs/hc_m10_i10/best.ckpt --out export/
    hcnet export hc_m5_i10 --pretrained random --fast --out export/   # the fast graph

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
on stderr; an --out that cannot be written (full, read-only) with code 74. Every file is
written under a temporary name and renamed, so nothing half-written is left under a final
name.

The export itself is :func:`hcnet.deploy.onnx.export`.
"""
import argparse
import os
import sys

from ..deploy.onnx import CheckError, ExportError, export
from ..model_zoo import get_model_cfg

# --------------------------------------------------------------------------------------
# building the network

def build(name=None, checkpoint=None, pretrained='true', classes=None, root=None):
    """(net, info) for a zoo name (published / given / random weights) or a checkpoint."""
    from ..model_zoo import PretrainedError, get_model, is_model
    from ..store import TAG_RE, find_entry
    info = {}
    if checkpoint:
        from ..train.checkpoint import CheckpointError, load_checkpoint, restore
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
        net = get_model(name, **kwargs)
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
        if value is True or (isinstance(value, str) and TAG_RE.match(value)
                             and not os.path.exists(value)):
            try:
                entry = find_entry(name, None if value is True else value, root=root)
            except PretrainedError:
                entry = None
            if entry is not None:
                classes = classes or entry.get('classes')
                info['config'] = entry.get('config') or {}
        net = get_model(name, classes=classes or 1000, pretrained=value, root=root)
    except PretrainedError as err:
        raise ExportError(str(err))
    info.update(getattr(net, 'pretrained_info', None) or {'source': 'random initialisation'})
    info.pop('entry', None)
    return net, name, info


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet export', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument('name', nargs='?', help='model-zoo name (weights: see --pretrained)')
    parser.add_argument('--checkpoint', help='a training checkpoint (.ckpt) instead of NAME')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--pretrained', default='true',
                        help="NAME's weights: true (published), a sha1 prefix, a .params path, "
                             "or 'random' (untrained, to test a deployment pipeline)")
    parser.add_argument('--input-size', type=int, default=None,
                        help="input height = width (default: the training config's, else the "
                             "model's own, hcnet.get_model_cfg)")
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
            'input_size') or get_model_cfg(name).input_size
        report = export(net, name, args.out, size, args.batch, args.tolerance,
                        not args.no_onnx, args.stem, info, fast=args.fast)
    except ExportError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    except CheckError as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    except OSError as err:                 # a full disk, a read-only --out: nothing half-written
        print('error: cannot write the export: %s' % (err.strerror or err), file=sys.stderr)
        return 74
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

