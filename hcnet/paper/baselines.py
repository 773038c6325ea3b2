"""Small-network baselines: the figures the slides and the paper quote, beside ours.

Sources: ``small-networks-slides.txt`` (SqueezeNet, Xception, MobileNet v1,
ShuffleNet v1, MobileNet v2, SqueezeNext, ShuffleNet v2, each with its paper's
tables) and the comparison rows of ``hybrid-composition-idleblock.txt`` Tables 2
and 4. "Ours" is :func:`hcnet.count` on the built network (standard convention:
conv + FC multiply-adds, trainable parameters / 1e6) at the input size the
quoted figure refers to (227 for the Caffe models SqueezeNet and SqueezeNext,
224 otherwise).

Networks come from GluonCV 0.10.5's model zoo where it has them (never
re-implemented here); SqueezeNext from hcnet (:mod:`hcnet.models.sqnxt`), EfficientNet-B0
to B3 from hcnet (``hc_effb0_m16_i0`` .. ``hc_effb3_m26_i0``). Two quoted widths GluonCV
has no zoo name for are built from GluonCV's own code and named in hcnet's zoo
(:mod:`hcnet.models.gluoncv_widths`): ``mobilenetv2_1.4`` (GluonCV's ``MobileNetV2(1.4)``)
and ``shufflenet_v2_2.0`` (GluonCV's ``shuffleUnitV2`` stages at the 2.0x widths,
``make_stage(multiplier=2)``, which GluonCV's ``ShuffleNetV2`` never passes).
Rows of networks nobody here implements are listed with their quoted figures.

:func:`render_baselines` returns the Markdown section; :data:`BASELINES` is the data;
:data:`GLUONCV_BASELINES` the GluonCV zoo names; :func:`baseline_configs` the
config names under ``hcnet/configs/baselines/`` (the zoo name, or ``<name>_<size>``
for a row at another resolution, e.g. ``mobilenet1.0_192``).
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

__all__ = ['Baseline', 'BASELINES', 'GLUONCV_BASELINES', 'build_baseline', 'measure_baseline',
           'baseline_configs', 'render_baselines']


@dataclass(frozen=True)
class Baseline:
    network: str                      # the network as the source names it
    width: str                        # width multiplier / variant
    model: Optional[str]              # zoo name (or builder key); None: not available
    zoo: Optional[str]                # gluoncv | hcnet | gluoncv-code | None
    madds: Optional[float]            # quoted MAdds (M)
    params: Optional[float]           # quoted parameters (M)
    top1: Optional[float]             # quoted ImageNet top-1 (%)
    source: str                       # where the figures are quoted
    input_size: int = 224             # resolution of the quoted figures (and of ours)
    table: Optional[int] = None       # the HC paper's table the row is in
    label: Optional[str] = None       # the row's label there
    config: bool = False              # has hcnet/configs/baselines/<config_name>.yaml
    note: str = ''
    config_suffix: str = ''           # config name = model + suffix (a row at another size)

    @property
    def config_name(self):
        """Name of this row's config under ``hcnet/configs/baselines/`` (None: no config)."""
        return self.model + self.config_suffix if self.config else None


_SLIDES = 'slides'
_NA = 'not in GluonCV 0.10.5'
_GCV = 'gluoncv'

BASELINES = (
    # --- SqueezeNet --------------------------------------------------------------------
    Baseline('SqueezeNet v1.0', '1.0', 'squeezenet1.0', _GCV, 837, 1.248424, 57.5,
             'slides: SqueezeNet Table 1 (params 1,248,424), SqueezeNext results (837M MAC)',
             input_size=227, config=True,
             note='other slides quote 833 MFLOPs (ShuffleNet Table 6) and 1700 M Mult-Adds '
                  '(MobileNet Table 9); GluonCV pads conv1 like Caffe (none), 227 input '
                  'gives its 111x111 conv1 output'),
    Baseline('SqueezeNet v1.1', '1.1', 'squeezenet1.1', _GCV, 352, 1.2, 57.1,
             'slides: SqueezeNext results table', config=True,
             note='the quoted 352 M matches 224x224 inputs; at the Caffe model\'s 227x227 '
                  'crop GluonCV\'s network measures 387.7 M (conv1 3x3/2 unpadded, ceil-mode '
                  'pooling: 113x113 instead of 111x111)'),
    # --- Xception ----------------------------------------------------------------------
    Baseline('Xception', '1.0', 'xception', _GCV, None, None, 79.0,
             'slides: Xception Table 1 (top-1 only, 299x299)', config=True,
             note="GluonCV's `xception` is Xception-65 (DeepLab's modified aligned Xception), "
                  "deeper and wider than Chollet's Xception; the slides quote no "
                  'MAdds/params for it'),
    # --- MobileNet v1 ------------------------------------------------------------------
    Baseline('MobileNet v1', '1.0', 'mobilenet1.0', _GCV, 569, 4.2, 70.6,
             'slides: MobileNet Table 6', config=True,
             note='also quoted as 575M (MobileNetV2 Table 4) and 4.24M (V1 vs V2 slide); '
                  'ours include 21,888 BatchNorm gamma/beta (4.210 M without)'),
    Baseline('MobileNet v1', '0.75', 'mobilenet0.75', _GCV, 325, 2.6, 68.4,
             'slides: MobileNet Table 6', config=True),
    Baseline('MobileNet v1', '0.5', 'mobilenet0.5', _GCV, 149, 1.3, 63.7,
             'slides: MobileNet Table 6', config=True),
    Baseline('MobileNet v1', '0.25', 'mobilenet0.25', _GCV, 41, 0.5, 50.6,
             'slides: MobileNet Table 6', config=True,
             note='the quoted 0.5 M has one significant digit'),
    Baseline('MobileNet v1', '1.0-192', 'mobilenet1.0', _GCV, 418, 4.2, 69.1,
             'slides: MobileNet Table 7 (resolution)', input_size=192, config=True,
             config_suffix='_192'),
    Baseline('MobileNet v1', '1.0-160', 'mobilenet1.0', _GCV, 290, 4.2, 67.2,
             'slides: MobileNet Table 7 (resolution)', input_size=160, config=True,
             config_suffix='_160'),
    Baseline('MobileNet v1', '1.0-128', 'mobilenet1.0', _GCV, 186, 4.2, 64.4,
             'slides: MobileNet Table 7 (resolution)', input_size=128, config=True,
             config_suffix='_128'),
    # --- ShuffleNet v1 -----------------------------------------------------------------
    Baseline('ShuffleNet v1', '1x (g=3)', 'shufflenet_v1', _GCV, 137, None, 67.4,
             'slides: ShuffleNet Tables 1-2 (137 MFLOPs for g=3; error 32.6%)', config=True,
             note="GluonCV's only ShuffleNet v1 is 1x with g=3 (the groups argument is not "
                  'passed on); its stride-2 units use (out - in)/4 bottleneck channels instead '
                  'of out/4, hence fewer MAdds'),
    Baseline('ShuffleNet v1', '1.5x (g=3)', None, None, 292, 3.4, 71.5,
             'slides: MobileNetV2 Table 4', note=_NA),
    Baseline('ShuffleNet v1', '2x (g=3)', None, None, 524, 5.4, 73.7,
             'slides: MobileNetV2 Table 4, ShuffleNet Table 5', note=_NA),
    # --- MobileNet v2 ------------------------------------------------------------------
    Baseline('MobileNet v2', '1.0', 'mobilenetv2_1.0', _GCV, 300, 3.4, 72.0,
             'slides: MobileNetV2 Table 4 (3.47M on the V1 vs V2 slide); paper Table 2',
             table=2, label='MobileNet v2 [21]', config=True,
             note='ours include 34,112 BatchNorm gamma/beta; without them 3.470 M, the 3.47 M '
                  'of the V1 vs V2 slide'),
    Baseline('MobileNet v2', '1.4', 'mobilenetv2_1.4', 'gluoncv-code', 585, 6.9, 74.7,
             'slides: MobileNetV2 Table 4; paper Table 2', table=2,
             label='MobileNet v2 (1.4) [21]', config=True,
             note='no GluonCV zoo name; hcnet names GluonCV\'s MobileNetV2(1.4), which rounds '
                  'widths with int(c * 1.4) (e.g. 22, 33, 44 channels) where the reference '
                  'rounds to multiples of 8; the 6.9 M quoted is not reproduced by this '
                  'network (-12%), we have not traced the rest of the gap'),
    # --- SqueezeNext (hcnet) -----------------------------------------------------------
    Baseline('SqueezeNext', '1.0-SqNxt-23', 'sqnxt23_w1', 'hcnet', 282, 0.72, 59.05,
             'slides: SqueezeNext results tables', input_size=227, config=True),
    Baseline('SqueezeNext', '1.0-SqNxt-23v5', 'sqnxt23v5_w1', 'hcnet', 228, 0.94, 59.24,
             'slides: SqueezeNext results table', input_size=227, config=True),
    Baseline('SqueezeNext', '1.5-SqNxt-23', 'sqnxt23_w3d2', 'hcnet', None, 1.4, 63.52,
             'slides: SqueezeNext results table', input_size=227, config=True),
    Baseline('SqueezeNext', '1.5-SqNxt-23v5', 'sqnxt23v5_w3d2', 'hcnet', None, None, None,
             '(no figures quoted)', input_size=227, config=True),
    Baseline('SqueezeNext', '2.0-SqNxt-23', 'sqnxt23_w2', 'hcnet', 749, 2.4, 67.18,
             'slides: SqueezeNext results tables', input_size=227, config=True),
    Baseline('SqueezeNext', '2.0-SqNxt-23v5', 'sqnxt23v5_w2', 'hcnet', 708, 3.23, 67.44,
             'slides: SqueezeNext results tables (3.2M and 3.23M)', input_size=227,
             config=True),
    # --- ShuffleNet v2 -----------------------------------------------------------------
    Baseline('ShuffleNet v2', '0.5x', None, None, 41, 1.4, 60.3,
             'slides: ShuffleNet V2 Table 5 and results (error 39.7%)', note=_NA),
    Baseline('ShuffleNet v2', '1x', 'shufflenet_v2', _GCV, 146, 2.3, 69.4,
             'slides: ShuffleNet V2 Table 5 and results (error 30.6%)', config=True,
             note="GluonCV's only ShuffleNet v2 is 1x"),
    Baseline('ShuffleNet v2', '1.5x', None, None, 299, 3.5, 72.6,
             'slides: ShuffleNet V2 Table 5 and results (error 27.4%)', note=_NA),
    Baseline('ShuffleNet v2', '2x', 'shufflenet_v2_2.0', 'gluoncv-code', 591, 7.4, 74.9,
             'slides: ShuffleNet V2 Table 5 and results; paper Table 2', table=2,
             label='ShuffleNet v2 [19]', config=True,
             note='no GluonCV zoo name; hcnet names GluonCV\'s shuffleUnitV2 stages at the 2x '
                  'widths (244/488/976, conv5 2048)'),
    # --- the rest of the paper's Table 2 -----------------------------------------------
    Baseline('MobileNet v3', 'Large 1.0', 'mobilenetv3_large', _GCV, 219, 5.4, 75.2,
             'paper Table 2', table=2, label='MobileNet v3 [9]',
             note="hcnet's own MobileNetV3-Large is hc_m15_i0 (hcnet/configs/mobilenetv3), so no "
                  'baseline config'),
    Baseline('FBNet-A', '', None, None, 249, 4.3, 73.0, 'paper Table 2', table=2,
             label='FBNet-A [26]', note=_NA),
    Baseline('FBNet-B', '', None, None, 295, 4.5, 74.1, 'paper Table 2', table=2,
             label='FBNet-B [26]', note=_NA),
    Baseline('Proxyless', '', None, None, 320, 4.1, 74.6, 'paper Table 2', table=2,
             label='Proxyless [1]', note=_NA),
    Baseline('FBNet-C', '', None, None, 375, 5.5, 74.9, 'paper Table 2', table=2,
             label='FBNet-C [26]', note=_NA),
    Baseline('EfficientNet-B0', '', 'hc_effb0_m16_i0', 'hcnet', 390, 5.3, 76.3,
             'paper Tables 2 and 4', table=2, label='EfficientNet-B0 [24]',
             note="not in GluonCV; hcnet's EfficientNet-B0 is hc_effb0_m16_i0 "
                  '(hcnet/configs/efficientnet)'),
    Baseline('NASNet-B', '', None, None, 488, 5.3, 72.5, 'paper Table 2', table=2,
             label='NASNet-B [31]', note=_NA),
    Baseline('NASNet-C', '', None, None, 558, 4.9, 74.5, 'paper Table 2', table=2,
             label='NASNet-C [31]', note=_NA),
    Baseline('NASNet-A', '4 @ 1056', 'nasnet_4_1056', _GCV, 564, 5.3, 74.0, 'paper Table 2',
             table=2, label='NASNet-A [31]', config=True,
             note="GluonCV's NASNet-A (4 @ 1056) measures 12% more MAdds than quoted; not "
                  'traced further'),
    Baseline('RandomWired-WS', '', None, None, 583, 5.6, 74.7, 'paper Table 2', table=2,
             label='RandomWired-WS [28]', note=_NA),
    Baseline('AmoebaNet', '', None, None, 580, 6.4, 75.7, 'paper Table 2', table=2,
             label='AmoebaNet [20]', note=_NA),
    Baseline('PNAS', '', None, None, 588, 5.1, 74.2, 'paper Table 2', table=2,
             label='PNAS [17]', note=_NA),
    Baseline('DARTS', '', None, None, 595, 4.9, 73.1, 'paper Table 2', table=2,
             label='DARTS [18]', note=_NA),
    # --- the paper's Table 4 (GluonCV rows marked ◇ there) -----------------------------
    Baseline('EfficientNet-B1', '', 'hc_effb1_m23_i0', 'hcnet', 700, 7.8, 78.8,
             'paper Table 4', input_size=240, table=4, label='EfficientNet-B1 [24]',
             note="not in GluonCV; hcnet's EfficientNet-B1 is hc_effb1_m23_i0, B0 "
                  'compound-scaled (hcnet.arch.scale_spec; hcnet/configs/efficientnet)'),
    Baseline('EfficientNet-B2', '', 'hc_effb2_m23_i0', 'hcnet', 1000, 9.2, 79.8,
             'paper Table 4', input_size=260, table=4, label='EfficientNet-B2 [24]',
             note="not in GluonCV; hcnet's EfficientNet-B2 is hc_effb2_m23_i0 "
                  '(hcnet/configs/efficientnet)'),
    Baseline('EfficientNet-B3', '', 'hc_effb3_m26_i0', 'hcnet', 1800, 12.0, 81.1,
             'paper Table 4', input_size=300, table=4, label='EfficientNet-B3 [24]',
             note="not in GluonCV; hcnet's EfficientNet-B3 is hc_effb3_m26_i0 "
                  '(hcnet/configs/efficientnet)'),
    Baseline('ResNet-50 v1', '', 'resnet50_v1', _GCV, 4100, 26.0, 77.3, 'paper Table 4 (◇)',
             table=4, label='ResNet-50 v1 [◇]', config=True,
             note="GluonCV's v1 strides in the first 1x1 of a downsampling bottleneck (3.86 G); "
                  '4.1 G is the stride-in-3x3 variant (GluonCV resnet50_v1b measures 4.09 G)'),
    Baseline('ResNeXt-50 32x4', '', 'resnext50_32x4d', _GCV, 4200, 25.0, 79.3,
             'paper Table 4 (◇)', table=4, label='ResNeXt-50 32x4 [◇]', config=True),
    Baseline('ResNeXt-101 32x4', '', 'resnext101_32x4d', _GCV, 7800, 44.3, 80.3,
             'paper Table 4 (◇)', table=4, label='ResNeXt-101 32x4 [◇]', config=True),
    Baseline('HRNet-W32-C', '', 'hrnet_w32_c', _GCV, 8310, 41.2, 79.5, 'paper Table 4',
             table=4, label='HRNet-W32-C [23]', config=True,
             note="GluonCV's HRNet-W32-C measures 7% more MAdds than quoted (params agree); "
                  'not traced further'),
    Baseline('ResNet-152 v1', '', 'resnet152_v1', _GCV, 11000, 60.0, 79.2, 'paper Table 4 (◇)',
             table=4, label='ResNet-152 v1 [◇]', config=True),
    Baseline('Squeeze-Excite-Net', 'SENet-154', 'senet_154', _GCV, 21000, 115.1, 81.3,
             'paper Table 4', table=4, label='Squeeze-Excite-Net [11]', config=True),
)

#: GluonCV zoo names among the baselines (build with gluoncv.model_zoo.get_model).
GLUONCV_BASELINES = tuple(b.model for b in BASELINES if b.zoo == _GCV)


def baseline_configs():
    """Config names ``hcnet/configs/baselines/<name>.yaml`` (:attr:`Baseline.config_name`)."""
    return [b.config_name for b in BASELINES if b.config]


def _shufflenet_v2(multiplier):
    """GluonCV's ShuffleNetV2 at another width
    (:func:`hcnet.models.gluoncv_widths.build_shufflenet_v2`)."""
    from ..models.gluoncv_widths import build_shufflenet_v2
    return build_shufflenet_v2(multiplier)


def build_baseline(row):
    """The (uninitialised where possible) network of a :class:`Baseline` row, or None."""
    if row.zoo is None:
        return None
    if row.zoo == _GCV:
        import gluoncv
        return gluoncv.model_zoo.get_model(row.model)
    if row.zoo == 'hcnet':
        if row.model.startswith('sqnxt'):
            from ..models.sqnxt import SQNXT_MODELS, SqueezeNext
            return SqueezeNext(*SQNXT_MODELS[row.model])
        from ..model_zoo import get_model
        return get_model(row.model)
    from ..models.gluoncv_widths import GLUONCV_WIDTHS
    if row.model in GLUONCV_WIDTHS:
        builder, width = GLUONCV_WIDTHS[row.model]
        return builder(width)
    raise ValueError('no builder for %r' % (row,))


@lru_cache(maxsize=None)
def measure_baseline(row):
    """(MAdds in M, params in M) of ``row``'s network at ``row.input_size`` (None if absent)."""
    net = build_baseline(row)
    if net is None:
        return None
    from ..complexity import count
    return count(net, row.input_size).standard()


def _f(value, digits=1):
    return '–' if value is None else '%.*f' % (digits, value)


def _pct(ours, quoted):
    if ours is None or quoted is None:
        return '–'
    return '%+.1f%%' % (100.0 * (ours - quoted) / quoted)


def render_baselines():
    """Markdown: every baseline's quoted MAdds / params beside ours."""
    out = ['## Baselines: small networks (slides) and the comparison rows of Tables 2 and 4', '',
           'Ours: `hcnet.count` on the built network (conv + FC multiply-adds including SE, '
           'trainable parameters / 1e6), at the input size the quoted figure refers to. '
           'Networks come from GluonCV 0.10.5\'s model zoo, SqueezeNext from hcnet '
           '(`hcnet.models.sqnxt`, after the authors\' Caffe definitions), EfficientNet-B0..B3 '
           'from hcnet (B1-B3 compound-scaled from B0, `hcnet.arch.scale_spec`), and the two '
           'widths GluonCV builds but does not name from GluonCV\'s code under hcnet names '
           '(`hcnet.models.gluoncv_widths`). "–": not quoted, or no implementation here.', '',
           '| network | width | model | input | MAdds quoted | ours | Δ | Params quoted | ours '
           '| Δ | top-1 quoted | source |',
           '|' + '---|' * 12]
    notes = []
    for row in BASELINES:
        ours = measure_baseline(row)
        madds, params = ours if ours else (None, None)
        if row.model is None:
            model = '–'
        elif row.zoo == 'gluoncv-code':
            model = '`%s` (hcnet name, GluonCV code)' % row.model
        else:
            model = '`%s` (%s)' % (row.model, 'GluonCV' if row.zoo == _GCV else 'hcnet')
        out.append('| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            row.network, row.width or '–', model, row.input_size, _f(row.madds, 0),
            _f(madds), _pct(madds, row.madds), _f(row.params, 2), _f(params, 3),
            _pct(params, row.params), _f(row.top1, 2), row.source))
        if row.note and row.note != _NA:
            notes.append('- %s %s: %s' % (row.network, row.width, row.note))
    missing = [('%s %s' % (r.network, r.width)).strip() for r in BASELINES if r.zoo is None]
    out += ['', 'Not implemented here (%s): %s.' % (_NA, ', '.join(missing)), '']
    out += ['Notes:', ''] + notes
    out += ['- SqueezeNet and SqueezeNext figures are for 227x227 crops (the Caffe models); at '
            '224x224 ours are: ' + ', '.join(
                '%s %.1f M' % (r.model, _at(r, 224)) for r in BASELINES
                if r.input_size == 227 and r.model) + '.',
            '- The SqueezeNext paper does not say how it counts MACs; ours (conv + FC only) '
            'are 1-1.5% below its figures and equal the counts of the authors\' prototxts.']
    return '\n'.join(out)


@lru_cache(maxsize=None)
def _at(row, size):
    from ..complexity import count
    return count(build_baseline(row), size).standard()[0]
