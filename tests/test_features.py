"""Backbones: ``get_model(name, features_only=True, out_indices=...)`` and ``feature_info``,
for every zoo family, hybridized, exported, loaded from a classifier's weights, and under
GluonCV's own SSD detector and FCN segmentation head."""
import functools
import math
import warnings

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import hcnet
from hcnet.model_zoo import HC_RECIPES, features_of
from hcnet.model_zoo.baselines import GLUONCV_WIDTHS, IRNET_MODELS, SQNXT_MODELS
from hcnet.nn import FeatureInfo, FeatureNet, block_name, walk_blocks
from hcnet.store import clear_index_cache
from conftest import rand, randomize

#: every zoo network that declares feature maps (the two GluonCV widths do not)
BACKBONES = sorted(set(HC_RECIPES) | set(IRNET_MODELS) | set(SQNXT_MODELS))
#: one network per family and trunk shape: MobileNetV3 (head convolution as the last map,
#: IdleBlocks, ISBs), EfficientNet-B0 / B2, IR-Net (maps inside a stage; CondConv),
#: SqueezeNext (a map inside the stem)
FAMILIES = ['hc_m10_i10', 'hc_m1_isb14', 'hc_effb0_m11_i5', 'hc_effb2_m23_i0', 'irnet_a',
            'irnet_c', 'sqnxt23_w1', 'sqnxt23v5_w1']


def _sizes(name):
    """Two input sizes per network: its own scale and another one."""
    return (56, 40) if name.startswith('irnet') else (64, 96)


def _expected_side(name, size, reduction):
    """The side of a map at ``reduction`` for a ``size`` input: every HC / IR-Net convolution
    is padded ('same'), so ceil(size / reduction); SqueezeNext's stem convolution is not
    (its 7x7 / 5x5 loses kernel - 1 pixels) and its max pool rounds up: within 3 of
    size / reduction, never above ceil."""
    if name.startswith('sqnxt'):
        return lambda side: size / reduction - 3 <= side <= math.ceil(size / reduction)
    return lambda side: side == math.ceil(size / reduction)


@pytest.mark.parametrize('name', BACKBONES)
def test_output_shapes_agree_with_feature_info(name):
    net = hcnet.get_model(name, features_only=True)
    assert isinstance(net, FeatureNet) and isinstance(net.feature_info, FeatureInfo)
    info = net.feature_info
    assert [sorted(d) for d in info] == [['index', 'module', 'num_chs', 'reduction']] * len(info)
    assert info.out_indices == tuple(range(len(info)))
    if name.startswith('irnet'):
        assert info.reduction() == [1, 2, 4, 8]          # IR-Net downsamples 56x56 by 8
    else:
        assert info.reduction() == [2, 4, 8, 16, 32]
    net.hybridize()
    for size in _sizes(name):
        outs = net(rand((2, 3, size, size)))
        assert isinstance(outs, list) and len(outs) == len(info)
        for out, d in zip(outs, info):
            n, c, h, w = out.shape
            assert (n, c) == (2, d['num_chs']), (d, out.shape)
            assert h == w and _expected_side(name, size, d['reduction'])(h), (size, d, out.shape)


def test_feature_info_of_the_base_networks_is_timms():
    """timm's feature_info for mobilenetv3_large_100 (channels 16, 24, 40, 112, 960 at
    blocks.0.0, 1.1, 2.2, 4.1, 6.0 -- its 960 convolution is blocks.6) and efficientnet_b0
    .. b3 (their last map is stage 7's output, conv_head excluded)."""
    timm = {'hc_m15_i0': [16, 24, 40, 112, 960], 'hc_effb0_m16_i0': [16, 24, 40, 112, 320],
            'hc_effb1_m23_i0': [16, 24, 40, 112, 320], 'hc_effb2_m23_i0': [16, 24, 48, 120, 352],
            'hc_effb3_m26_i0': [24, 32, 48, 136, 384]}
    for name, channels in timm.items():
        info = hcnet.get_model(name).feature_info          # the classifier has it too, as timm's
        assert info.channels() == channels, name
        assert info.reduction() == [2, 4, 8, 16, 32], name
    assert hcnet.get_model('hc_m15_i0').feature_info.module_name() == [
        'stage1_block1', 'stage2_block2', 'stage3_block3', 'stage5_block2', 'head']
    assert hcnet.get_model('hc_effb0_m16_i0').feature_info.module_name() == [
        'stage1_block1', 'stage2_block2', 'stage3_block2', 'stage5_block3', 'stage7_block1']


def test_feature_info_accessors_and_out_indices():
    net = hcnet.get_model('hc_m10_i10', features_only=True, out_indices=(1, -1))
    info = net.feature_info
    assert net.out_indices == info.out_indices == (1, 4)
    assert info.channels() == [24, 960] and info.reduction() == [4, 32]
    assert info.module_name() == ['stage2_block3', 'head']
    assert info.get('num_chs', 1) == 960 and info.get('reduction', [0, 1]) == [4, 32]
    assert info.get_dicts(keys=['num_chs']) == [{'num_chs': 24}, {'num_chs': 960}]
    assert info[0] == {'num_chs': 24, 'reduction': 4, 'module': 'stage2_block3', 'index': 1}
    assert [o.shape[1] for o in net(rand((1, 3, 64, 64)))] == [24, 960]
    last2 = hcnet.get_model('sqnxt23_w1', features_only=True, out_indices=2)
    assert last2.out_indices == (3, 4)
    one = hcnet.get_model('irnet_a', features_only=True, out_indices=[0])
    outs = one(rand((1, 3, 56, 56)))
    assert len(outs) == 1 and outs[0].shape == (1, 24, 56, 56)
    assert one.feature_info.module_name() == ['stage2_block1']   # inside stage 2


@pytest.mark.parametrize('kwargs, match', [
    (dict(features_only=True, out_indices=(0, 5)), 'there are 5 feature maps'),
    (dict(features_only=True, out_indices=(1, 1)), 'each once'),
    (dict(features_only=True, out_indices=()), 'at least one'),
    (dict(features_only=True, out_indices=6), 'there are 5 feature maps'),
    (dict(out_indices=(1, 2)), 'needs features_only=True'),
])
def test_bad_out_indices_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        hcnet.get_model('hc_m10_i5', **kwargs)
    assert 'hc_m10_i5' in str(err.value) or 'features_only' in str(err.value)


@pytest.mark.parametrize('name', sorted(GLUONCV_WIDTHS))
def test_networks_without_feature_info_say_so(name):
    with pytest.raises(ValueError, match='declares no feature maps'):
        hcnet.get_model(name, features_only=True)


def _hooked(net, modules, x):
    """The outputs of ``net``'s blocks named ``modules`` on ``x`` (forward hooks on the
    classifier, run imperatively, as timm's FeatureHooks), and its logits."""
    named = {}
    for b in walk_blocks(net):                    # outermost first: an inner
        named.setdefault(block_name(b, net), b)   # HybridSequential(prefix='') shares the name
    got, handles = {}, []
    for m in modules:
        handles.append(named[m].register_forward_hook(
            lambda block, args, out, m=m: got.__setitem__(m, out.asnumpy())))
    logits = net(x).asnumpy()
    for h in handles:
        h.detach()
    return [got[m] for m in modules], logits


@pytest.mark.parametrize('name', FAMILIES)
def test_features_are_the_classifier_blocks_outputs_with_its_weights(name, tmp_path):
    """A classifier (10 classes, random weights) saved to a .params file; features_only
    with ``pretrained=FILE`` (and the default 1000 classes: the head is dropped) gives its
    blocks' outputs exactly; its parameters are the classifier's, under the same names,
    without head, pooling or classifier."""
    size = _sizes(name)[0]
    clf = hcnet.get_model(name, classes=10)
    randomize(clf, seed=3)
    path = str(tmp_path / 'clf.params')
    clf.save_parameters(path)
    net = hcnet.get_model(name, features_only=True, pretrained=path)
    assert net.pretrained_info['path'] == path and net.name_in_zoo == name
    x = rand((2, 3, size, size), seed=4)
    expect, logits = _hooked(clf, net.feature_info.module_name(), x)
    assert np.isfinite(logits).all()
    for got, ref in zip(net(x), expect):
        assert np.abs(ref).max() > 0
        np.testing.assert_array_equal(got.asnumpy(), ref)
    ours = net._collect_params_with_prefix()
    theirs = clf._collect_params_with_prefix()
    assert set(ours) < set(theirs)
    for key, p in ours.items():
        np.testing.assert_array_equal(p.data().asnumpy(), theirs[key].data().asnumpy())
    assert not [k for k in ours if k.startswith('output.')]
    head_index = len(clf.features) - 2 if name.startswith(('irnet', 'sqnxt', 'hc_effb')) else None
    if head_index is not None:                           # no head unless it is a feature map
        assert not [k for k in ours if k.startswith('features.%d.' % head_index)]
    fresh = hcnet.get_model(name, features_only=True)
    assert not np.array_equal(fresh(x)[-1].asnumpy(), expect[-1])


def test_pretrained_true_loads_the_published_classifier(tmp_path, monkeypatch):
    """``pretrained=True`` with features_only: the published classifier's weights (10
    classes), then the head dropped -- as timm."""
    from hcnet.store.publish import publish_params
    name = 'hc_m10_i10'
    clf = hcnet.get_model(name, classes=10)
    randomize(clf, seed=5)
    store = str(tmp_path / 'store')
    params = {k: p.data().asnumpy() for k, p in clf._collect_params_with_prefix().items()}
    publish_params(params, store, name, {'model': name, 'classes': 10})
    monkeypatch.setenv('HCNET_REPO_URL', 'file://' + store)
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    clear_index_cache()
    try:
        net = hcnet.get_model(name, features_only=True, pretrained=True, out_indices=(2, 4))
    finally:
        clear_index_cache()
    assert net.pretrained_info['source'] == 'store'
    x = rand((1, 3, 64, 64), seed=6)
    expect, _ = _hooked(clf, ['stage3_block3', 'head'], x)
    for got, ref in zip(net(x), expect):
        np.testing.assert_array_equal(got.asnumpy(), ref)


def test_features_of_keeps_the_blocks_and_the_zoo_attributes():
    clf = hcnet.get_model('hc_effb0_m11_i5')
    net = features_of(clf, out_indices=(3,))
    assert net.name_in_zoo == 'hc_effb0_m11_i5' and net.default_cfg == clf.default_cfg
    assert net.features[1] is clf.features[1]             # the same blocks, not copies
    assert net.feature_info.module_name() == ['stage5_block3']
    assert len(net.features) == 6                          # stem, stages 1-5: nothing after


@pytest.mark.parametrize('name', FAMILIES)
def test_hybridized_backbones_export_to_symbol_and_onnx(name, tmp_path):
    """HybridBlock.export (what hcnet export writes for the Gluon graph) and hcnet's ONNX
    step (hcnet.deploy.onnx.export_onnx): every feature map reproduced, batch dynamic."""
    ort = pytest.importorskip('onnxruntime')
    from hcnet.deploy.onnx import export_onnx
    size = _sizes(name)[0]
    net = hcnet.get_model(name, features_only=True)
    randomize(net, seed=1)
    net.hybridize()
    x = rand((2, 3, size, size), seed=2)
    expect = [o.asnumpy() for o in net(x)]
    prefix = str(tmp_path / name)
    net.export(prefix)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        sym = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    for got, ref in zip(sym(x), expect):
        np.testing.assert_allclose(got.asnumpy(), ref, rtol=1e-4, atol=1e-4 * max(1, np.abs(ref).max()))
    if name == 'irnet_c':      # the classifier irnet_c fails the same way: not the backbone's doing
        with pytest.raises(Exception, match='ReduceMean'):
            export_onnx(prefix + '-symbol.json', prefix + '-0000.params', prefix + '.onnx',
                        (2, 3, size, size))
        return                 # MXNet 1.9.1 writes CondConv's routing mean as opset-18 ReduceMean
    model = export_onnx(prefix + '-symbol.json', prefix + '-0000.params', prefix + '.onnx',
                        (2, 3, size, size))
    assert len(model.graph.output) == len(expect)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(prefix + '.onnx', options, providers=['CPUExecutionProvider'])
    for batch in (2, 3):
        xb = rand((batch, 3, size, size), seed=batch)
        ref = [o.asnumpy() for o in net(xb)]
        got = session.run(None, {'data': xb.asnumpy()})
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert g.shape == r.shape
            assert np.abs(g - r).max() <= 1e-4 * max(1.0, np.abs(r).max())


def test_gluoncv_sees_the_option():
    import gluoncv
    net = gluoncv.model_zoo.get_model('hc_m5_i10', features_only=True, out_indices=(3, 4))
    assert net.feature_info.channels() == [112, 960]


# --------------------------------------------------------------------------------------
# GluonCV's own detection and segmentation constructors on an HC backbone

def _only_new_params_initialized(net):
    """GluonCV's way (its train scripts): initialise everything; what the backbone
    already holds (He initialisation or pretrained weights) stays, with a warning each."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        net.initialize()


def test_gluoncv_ssd_on_an_hc_backbone_trains_on_synthetic_boxes():
    """GluonCV's SSD with a custom network (``network=None``: ``features`` builds a
    multi-output HybridBlock, called with pretrained / ctx / root / norm_layer /
    norm_kwargs), GluonCV's SSDTargetGenerator and SSDMultiBoxLoss, a few SGD steps on one
    synthetic batch: the loss falls and the backbone's weights move."""
    from gluoncv.loss import SSDMultiBoxLoss
    from gluoncv.model_zoo.ssd import SSD
    from gluoncv.model_zoo.ssd.target import SSDTargetGenerator

    size, classes = 128, ['square', 'bar']
    backbone = functools.partial(hcnet.get_model, 'hc_m10_i10', features_only=True,
                                 out_indices=(2, 3, 4))             # strides 8, 16, 32
    net = SSD(None, size, features=backbone, num_filters=None, sizes=[20, 45, 80, 115],
              ratios=[[1, 2, 0.5]] * 3, steps=[8, 16, 32], classes=classes,
              anchor_alloc_size=32)
    assert isinstance(net.features, FeatureNet)
    stem = net.features.features[0][0].weight
    before = stem.data().asnumpy().copy()
    _only_new_params_initialized(net)
    np.testing.assert_array_equal(stem.data().asnumpy(), before)
    net.hybridize()

    x = rand((2, 3, size, size), seed=11)
    gt_boxes = mx.nd.array([[[8, 10, 60, 70], [70, 40, 120, 100]],
                            [[30, 30, 90, 90], [4, 80, 50, 124]]])
    gt_ids = mx.nd.array([[[0], [1]], [[1], [0]]])
    with autograd.train_mode():
        cls_preds, _, anchors = net(x)
    assert cls_preds.shape == (2, anchors.shape[1], len(classes) + 1)
    targets = SSDTargetGenerator(iou_thresh=0.5, negative_mining_ratio=-1)
    cls_targets, box_targets, _ = targets(anchors, None, gt_boxes, gt_ids)
    assert (cls_targets > 0).sum().asscalar() >= 4                  # each box matched
    loss_fn = SSDMultiBoxLoss()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.005, 'momentum': 0.9})
    losses = []
    for _ in range(6):
        with autograd.record():
            cls_preds, box_preds, _ = net(x)
            sum_loss, _, _ = loss_fn(cls_preds, box_preds, cls_targets, box_targets)
            autograd.backward(sum_loss)
        trainer.step(1)
        losses.append(float(sum(l.sum().asscalar() for l in sum_loss)))
    assert np.isfinite(losses).all() and losses[-1] < 0.9 * losses[0], losses
    assert not np.array_equal(stem.data().asnumpy(), before)        # the backbone trained
    net.set_nms(nms_thresh=0.45, nms_topk=400, post_nms=100)      # clears the training graph
    ids, scores, bboxes = net(x)                                     # inference: detections
    assert ids.shape == scores.shape == (2, 100, 1) and bboxes.shape == (2, 100, 4)


class _FCN(gluon.HybridBlock):
    """GluonCV's FCN head (``gluoncv.model_zoo.fcn._FCNHead``) over the stride-8 map of an
    HC backbone, upsampled to the input (as GluonCV's FCN does with ResNet's c4)."""

    def __init__(self, name, nclass, **kwargs):
        super().__init__(**kwargs)
        from gluoncv.model_zoo.fcn import _FCNHead
        with self.name_scope():
            self.backbone = hcnet.get_model(name, features_only=True, out_indices=(2,))
            self.head = _FCNHead(self.backbone.feature_info.channels()[0], nclass)

    def hybrid_forward(self, F, x):
        feature = self.backbone(x)[0]
        return F.contrib.BilinearResize2D(self.head(feature), like=x, mode='like')


def test_gluoncv_fcn_head_on_an_hc_backbone_trains_on_synthetic_masks():
    from gluoncv.loss import MixSoftmaxCrossEntropyLoss
    net = _FCN('hc_effb0_m11_i5', nclass=3)
    _only_new_params_initialized(net)
    net.hybridize()
    x = rand((2, 3, 64, 64), seed=12)
    mask = np.zeros((2, 64, 64), dtype='float32')
    mask[:, 8:40, 8:40], mask[:, 40:, 30:] = 1, 2                   # two synthetic shapes
    y = mx.nd.array(mask)
    loss_fn = MixSoftmaxCrossEntropyLoss(aux=False)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.05, 'momentum': 0.9})
    losses = []
    for _ in range(6):
        with autograd.record():
            out = net(x)
            loss = loss_fn(out, y)
        loss.backward()
        trainer.step(2)
        losses.append(float(loss.mean().asscalar()))
    assert out.shape == (2, 3, 64, 64)
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
