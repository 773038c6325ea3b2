"""Base architectures as data: MobileNetV3-Large, EfficientNet-B0 and B1-B3.

A base spec lists the stem, the per-stage block rows, the head and classifier,
the SE sizing rules, the paper's Adjacent placement and the counting
convention under which the paper's MAdds/Params columns are reproduced
(``../shared/reference/paper-tables.md``). Stages are numbered from 1 and
named by their output width in the docs (stage 2 of MobileNetV3 = "24").

EfficientNet-B1, B2 and B3 are not tables of their own: :func:`scale_spec` derives
them from B0 by compound scaling (width, depth, resolution, dropout), so they can
never drift from it.
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ['Row', 'SERule', 'BaseSpec', 'BASE_SPECS', 'get_base_spec', 'make_divisible',
           'scale_spec', 'alternating_adjacent', 'EFFICIENTNET_SCALING']


def make_divisible(value, divisor=8):
    """Round ``value`` to a multiple of ``divisor`` without losing more than 10%."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


@dataclass(frozen=True)
class Row:
    """One block of a base network (a row of the architecture table).

    The expanded width is either absolute (``exp``, as MobileNetV3's table gives
    it) or relative to the block's input width (``expand_ratio``, EfficientNet).
    """
    kernel: int                            # depthwise kernel size
    out: int                               # output width
    stride: int = 1                        # depthwise stride
    exp: Optional[int] = None              # absolute expanded width
    expand_ratio: Optional[float] = None   # expanded width / input width
    se: bool = False                       # squeeze-and-excitation on/off
    act: str = 'relu'                      # activation name (hcnet.nn.get_act_layer)

    def expanded(self, in_channels):
        """Expanded (depthwise) width of this block for ``in_channels`` inputs."""
        return self.exp if self.exp is not None else int(in_channels * self.expand_ratio)


@dataclass(frozen=True)
class SERule:
    """How wide the SE squeeze layer of a block is.

    ``of`` names the width the ratio applies to: ``'exp'`` (the expanded width)
    or ``'in'`` (the block's full input width, idle channels included);
    ``divisor`` rounds with :func:`make_divisible`, ``None`` floors as EfficientNet.
    """
    ratio: float = 0.25
    of: str = 'in'
    divisor: Optional[int] = None

    def width(self, in_channels, exp_channels):
        base = exp_channels if self.of == 'exp' else in_channels
        if self.divisor:
            return make_divisible(base * self.ratio, self.divisor)
        return max(1, int(base * self.ratio))


@dataclass(frozen=True)
class BaseSpec:
    """A base network: what the None configuration builds."""
    name: str                              # registry key, e.g. 'mobilenetv3_large'
    title: str                             # human name
    stem_channels: int                     # 3x3 stride-2 stem conv width
    stem_act: str                          # stem activation
    stages: Tuple[Tuple[Row, ...], ...]    # per-stage block rows
    head_channels: int                     # final 1x1 conv (+BN+act) width
    head_act: str                          # its activation
    pre_logits: Optional[int]              # 1x1 conv after pooling (MobileNetV3: 1280), no BN
    dropout: float                         # dropout before the classifier
    drop_connect: float                    # stochastic depth rate, grown linearly over blocks (0: off)
    se_act: str                            # SE inner activation
    se_gate: str                           # SE gate
    se_mb: SERule                          # SE width inside MBBlocks
    se_idle: SERule                        # SE width inside IdleBlocks
    adjacent: Tuple[Tuple[int, int], ...]  # paper's Adjacent placement, (stage, block), 0-based
    deep_stages: Tuple[int, ...]           # stages deepened by `deeper(at='all')`, 0-based
    paper_se_madds: bool                   # paper convention: SE convs counted in MAdds
    paper_se_bias: bool                    # paper convention: SE biases counted in Params
    paper_anchored: bool                   # compare with the paper as differences from None
    resolution: int = 224                  # the input size the network is meant for
    width_mult: float = 1.0                # compound scaling this spec was derived with
    depth_mult: float = 1.0                # (scale_spec); 1.0: a base table as published

    def stage_inputs(self):
        """Input width of each stage."""
        widths, prev = [], self.stem_channels
        for rows in self.stages:
            widths.append(prev)
            prev = rows[-1].out
        return widths

    def replaceable(self, stage, block):
        """True if block (0-based) keeps stride 1 and width, so a plain IdleBlock fits."""
        row = self.stages[stage][block]
        in_ch = self.stage_inputs()[stage] if block == 0 else self.stages[stage][block - 1].out
        return row.stride == 1 and in_ch == row.out


def _mbv3_large():
    def r(k, exp, out, se, act, s):
        return Row(kernel=k, out=out, stride=s, exp=exp, se=se, act=act)
    re, hs = 'relu', 'hswish'
    stages = (
        (r(3, 16, 16, False, re, 1),),
        (r(3, 64, 24, False, re, 2), r(3, 72, 24, False, re, 1)),
        (r(5, 72, 40, True, re, 2), r(5, 120, 40, True, re, 1), r(5, 120, 40, True, re, 1)),
        (r(3, 240, 80, False, hs, 2), r(3, 200, 80, False, hs, 1),
         r(3, 184, 80, False, hs, 1), r(3, 184, 80, False, hs, 1)),
        (r(3, 480, 112, True, hs, 1), r(3, 672, 112, True, hs, 1)),
        (r(5, 672, 160, True, hs, 2), r(5, 960, 160, True, hs, 1), r(5, 960, 160, True, hs, 1)),
    )
    return BaseSpec(
        name='mobilenetv3_large', title='MobileNetV3-Large', stem_channels=16, stem_act=hs,
        stages=stages, head_channels=960, head_act=hs, pre_logits=1280, dropout=0.2,
        drop_connect=0.0, se_act='relu', se_gate='hsigmoid',
        se_mb=SERule(0.25, 'exp', 8), se_idle=SERule(0.25, 'in', 8),
        # 24[M I] 40[M M M] 80[M M I I] 112[M I] 160[M I M] (paper-tables.md)
        adjacent=((1, 1), (3, 2), (3, 3), (4, 1), (5, 1)),
        deep_stages=(1, 2, 3, 4, 5),
        paper_se_madds=False, paper_se_bias=True, paper_anchored=True)


def _efficientnet_b0():
    def stage(n, k, ratio, out, s):
        return tuple(Row(kernel=k, out=out, stride=s if i == 0 else 1, expand_ratio=ratio,
                         se=True, act='swish') for i in range(n))
    stages = (stage(1, 3, 1, 16, 1), stage(2, 3, 6, 24, 2), stage(2, 5, 6, 40, 2),
              stage(3, 3, 6, 80, 2), stage(3, 5, 6, 112, 1), stage(4, 5, 6, 192, 2),
              stage(1, 3, 6, 320, 1))
    return BaseSpec(
        name='efficientnet_b0', title='EfficientNet-B0', stem_channels=32, stem_act='swish',
        stages=stages, head_channels=1280, head_act='swish', pre_logits=None, dropout=0.2,
        drop_connect=0.2, se_act='swish', se_gate='sigmoid',
        se_mb=SERule(0.25, 'in', None), se_idle=SERule(0.25, 'in', None),
        # 24[M M] 40[M I] 80[M I M] 112[M I M] 192[M I M I] (paper-tables.md)
        adjacent=((2, 1), (3, 1), (4, 1), (5, 1), (5, 3)),
        deep_stages=(1, 2, 3, 4, 5),
        paper_se_madds=True, paper_se_bias=False, paper_anchored=False)


def _scale_row(row, width, divisor):
    return dataclasses.replace(
        row, out=make_divisible(row.out * width, divisor),
        exp=None if row.exp is None else make_divisible(row.exp * width, divisor))


def alternating_adjacent(spec, stages):
    """Adjacent positions (0-based) filling ``stages`` of ``spec`` in alternation: every
    replaceable block whose input block is an MBBlock, the rest left M -- the greedy
    Adjacent rule with a budget that covers exactly those stages."""
    placed = []
    for s in sorted(stages):
        prev_idle = False
        for b in range(len(spec.stages[s])):
            idle = b > 0 and not prev_idle and spec.replaceable(s, b)
            if idle:
                placed.append((s, b))
            prev_idle = idle
    return tuple(placed)


def scale_spec(base, width=1.0, depth=1.0, resolution=224, dropout=None, *, name=None,
               title=None, divisor=8):
    """Compound scaling of ``base`` (EfficientNet, Tan & Le 2019), as the reference does it.

    * Widths: every channel count -- stem, block outputs (absolute expanded widths too),
      head -- becomes ``make_divisible(c * width, divisor)`` (TF's / timm's
      ``round_channels``); expand ratios, kernels, strides, SE and activations stay.
    * Depth: stage ``s`` of ``n`` blocks gets ``ceil(n * depth)`` (``round_repeats``);
      the new blocks repeat the stage's last row at stride 1.
    * ``resolution`` is the input size the scaled network is meant for; ``dropout``
      (default: the base's) the rate before the classifier. Drop-connect, SE rules and
      the counting-convention flags are the base's.
    * Adjacent placement. B0's (paper-tables.md) is the greedy rule of section 3 with a
      budget of 5, which fills stages 40..192 in alternation -- ``M I M I ...`` from each
      stage's first block -- and stops before stage 24. We keep that shape rather than
      the budget: the same stages, each MBBlock followed by an IdleBlock, so the extra
      depth of a scaled stage gets its share of IdleBlocks (a fixed budget of 5 would
      leave every new block an MBBlock and put the idle ones in the last stages only).
      On B0 itself this derivation gives B0's placement back; a scaling that keeps every
      stage's depth keeps the base's placement as it is (MobileNetV3's is no alternation).
      ``policy='adjacent', budget=n`` still applies the plain greedy rule to any spec.
    """
    base = base if isinstance(base, BaseSpec) else get_base_spec(base)
    stages = []
    for rows in base.stages:
        scaled = [_scale_row(row, width, divisor) for row in rows]
        n = int(math.ceil(len(rows) * depth))
        last = dataclasses.replace(scaled[-1], stride=1)
        stages.append(tuple(scaled[:n]) + (last,) * (n - len(scaled)))
    spec = dataclasses.replace(
        base, name=name or base.name, title=title or base.title,
        stem_channels=make_divisible(base.stem_channels * width, divisor),
        stages=tuple(stages),
        head_channels=make_divisible(base.head_channels * width, divisor),
        pre_logits=None if base.pre_logits is None else make_divisible(base.pre_logits * width,
                                                                       divisor),
        dropout=base.dropout if dropout is None else dropout, adjacent=(),
        resolution=resolution, width_mult=base.width_mult * width,
        depth_mult=base.depth_mult * depth)
    if all(len(new) == len(old) for new, old in zip(spec.stages, base.stages)):
        return dataclasses.replace(spec, adjacent=base.adjacent)
    return dataclasses.replace(
        spec, adjacent=alternating_adjacent(spec, {s for s, _ in base.adjacent}))


#: EfficientNet-B1..B3 from B0: (width, depth, resolution, dropout), the EfficientNet
#: paper's / reference implementation's coefficients
EFFICIENTNET_SCALING = {
    1: (1.0, 1.1, 240, 0.2),
    2: (1.1, 1.2, 260, 0.3),
    3: (1.2, 1.4, 300, 0.3),
}


def _efficientnet_scaled(b0):
    return tuple(scale_spec(b0, width, depth, resolution, dropout,
                            name='efficientnet_b%d' % k, title='EfficientNet-B%d' % k)
                 for k, (width, depth, resolution, dropout) in EFFICIENTNET_SCALING.items())


_B0 = _efficientnet_b0()
BASE_SPECS = {spec.name: spec
              for spec in (_mbv3_large(), _B0) + _efficientnet_scaled(_B0)}


def get_base_spec(name):
    """Look up a base spec by name (``mobilenetv3_large``, ``efficientnet_b0`` .. ``_b3``)."""
    if isinstance(name, BaseSpec):
        return name
    try:
        return BASE_SPECS[name]
    except KeyError:
        raise ValueError('unknown base network %r; choose one of %s'
                         % (name, ', '.join(sorted(BASE_SPECS)))) from None
