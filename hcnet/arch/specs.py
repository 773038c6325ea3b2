"""Base architectures as data: MobileNetV3-Large and EfficientNet-B0.

A base spec lists the stem, the per-stage block rows, the head and classifier,
the SE sizing rules, the paper's Adjacent placement and the counting
convention under which the paper's MAdds/Params columns are reproduced
(``../shared/reference/paper-tables.md``). Stages are numbered from 1 and
named by their output width in the docs (stage 2 of MobileNetV3 = "24").
"""
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ['Row', 'SERule', 'BaseSpec', 'BASE_SPECS', 'get_base_spec', 'make_divisible']


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


BASE_SPECS = {spec.name: spec for spec in (_mbv3_large(), _efficientnet_b0())}


def get_base_spec(name):
    """Look up a base spec by name (``mobilenetv3_large`` or ``efficientnet_b0``)."""
    if isinstance(name, BaseSpec):
        return name
    try:
        return BASE_SPECS[name]
    except KeyError:
        raise ValueError('unknown base network %r; choose one of %s'
                         % (name, ', '.join(sorted(BASE_SPECS)))) from None
