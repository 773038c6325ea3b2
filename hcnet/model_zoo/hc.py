"""Every network of the paper's Tables 1-7, registered by name.

Naming: ``hc_[effb<K>_]m<M>_<blocks><N>[_lr]``

* ``effb<K>`` -- EfficientNet-B<K> base (B1-B3: B0 compound-scaled,
  :func:`hcnet.arch.scale_spec`); without it, MobileNetV3-Large;
* ``m<M>`` -- M MBBlocks;
* ``i<N>`` -- N IdleBlocks (all on the default side, R: see ``IdleBlock``),
  ``isb<N>`` -- N Inverted Shuffle Blocks, ``lr<N>`` -- N IdleBlocks alternating
  L, R within each run;
* ``_lr`` -- the Tables 1/3 spelling of "Adjacent + 1 IdleBlock L/R"
  (``hc_m10_i10_lr`` is ``hc_m10_i10`` with alternating sides).

Each entry is a base + composition recipe (:func:`hcnet.arch.compose`); print the
resolved pattern with ``hcnet describe NAME``.
"""
import mxnet as mx

from ..models.hc import build_hcnet, hc_cfg
from .builder import build_model
from .registry import register_model

__all__ = ['HC_RECIPES', 'hc_net']


def hc_net(base, *, pretrained=False, ctx=mx.cpu(), root=None, name=None,
           pretrained_classifier=True, **kwargs):
    """Build a hybrid-composition network from a base spec and a composition policy.

    Architecture arguments (the composition policy of :func:`hcnet.arch.compose`,
    ``idle_side``, ``alpha``, ``classes``, ``dropout``, ``drop_connect``,
    ``norm_layer``, ``norm_kwargs``) are those of :func:`hcnet.models.build_hcnet`.
    ``pretrained`` loads published weights for the zoo ``name`` (see
    :mod:`hcnet.store`); otherwise parameters are initialised on ``ctx``.
    ``pretrained_classifier=False`` loads all but the classifier, which is initialised
    afresh (fine-tuning on other classes). ``features_only=True`` (with ``out_indices``)
    returns the backbone, the list of feature maps at strides 2 to 32 (see
    :func:`hcnet.model_zoo.build_model`).
    """
    return build_model(build_hcnet, name, base=base, pretrained=pretrained, ctx=ctx, root=root,
                       pretrained_classifier=pretrained_classifier, default_cfg=hc_cfg(base),
                       **kwargs)

_MB, _EFF = 'mobilenetv3_large', 'efficientnet_b0'
_B1, _B2, _B3 = 'efficientnet_b1', 'efficientnet_b2', 'efficientnet_b3'

#: name -> (base, composition recipe, what it is)
HC_RECIPES = {
    # MobileNetV3-Large (Tables 1, 2, 5, 6, 7)
    'hc_m15_i0': (_MB, dict(policy='none'), 'None: MobileNetV3-Large'),
    'hc_m5_i10': (_MB, dict(policy='maximum'), 'Maximum'),
    'hc_m10_i5': (_MB, dict(policy='adjacent'), 'Adjacent'),
    'hc_m10_i10': (_MB, dict(policy='adjacent+1'), 'Adjacent + 1 IdleBlock'),
    'hc_m10_i10_lr': (_MB, dict(policy='adjacent+1', sides='LR'),
                      'Adjacent + 1 IdleBlock, L/R'),
    'hc_m15_i10': (_MB, dict(policy='deeper', insert='I', count=2),
                   'None + two IdleBlocks after each Adjacent position'),
    'hc_m15_i20': (_MB, dict(policy='deeper', insert='I', count=4),
                   'None + four IdleBlocks after each Adjacent position'),
    'hc_m25_i0': (_MB, dict(policy='deeper', insert='M', count=2),
                  'None + two MBBlocks after each Adjacent position'),
    'hc_m35_i0': (_MB, dict(policy='deeper', insert='M', count=4),
                  'None + four MBBlocks after each Adjacent position'),
    'hc_m1_i14': (_MB, dict(policy='all-idle'), 'only the first block is an MBBlock'),
    'hc_m1_isb14': (_MB, dict(policy='all-idle', block='isb'), 'M=1 with ISBs'),
    'hc_m15_isb10': (_MB, dict(policy='deeper', insert='I', count=2, block='isb'),
                     'hc_m15_i10 with ISBs'),
    'hc_m15_isb20': (_MB, dict(policy='deeper', insert='I', count=4, block='isb'),
                     'hc_m15_i20 with ISBs'),
    'hc_m1_lr14': (_MB, dict(policy='all-idle', sides='LR'), 'M=1, L/R IdleBlocks'),
    'hc_m5_lr10': (_MB, dict(policy='maximum', sides='LR'), 'Maximum, L/R IdleBlocks'),
    'hc_m15_lr20': (_MB, dict(policy='deeper', insert='I', count=4, sides='LR'),
                    'hc_m15_i20 with L/R IdleBlocks'),
    # EfficientNet-B0 (Tables 3, 4, 6)
    'hc_effb0_m16_i0': (_EFF, dict(policy='none'), 'None: EfficientNet-B0'),
    'hc_effb0_m7_i9': (_EFF, dict(policy='maximum'), 'Maximum'),
    'hc_effb0_m11_i5': (_EFF, dict(policy='adjacent'), 'Adjacent'),
    'hc_effb0_m11_i10': (_EFF, dict(policy='adjacent+1'), 'Adjacent + 1 IdleBlock'),
    'hc_effb0_m11_i10_lr': (_EFF, dict(policy='adjacent+1', sides='LR'),
                            'Adjacent + 1 IdleBlock, L/R'),
    'hc_effb0_m16_i14': (_EFF, dict(policy='deeper', insert='I', count=1, at='all'),
                         'an IdleBlock after every block of stages 24..192'),
    'hc_effb0_m16_i28': (_EFF, dict(policy='deeper', insert='I', count=2, at='all'),
                         'two IdleBlocks after every block of stages 24..192'),
    'hc_effb0_m30_i0': (_EFF, dict(policy='deeper', insert='M', count=1, at='all'),
                        'stages 24..192 at double depth'),
    'hc_effb0_m44_i0': (_EFF, dict(policy='deeper', insert='M', count=2, at='all'),
                        'stages 24..192 at triple depth'),
    # EfficientNet-B1..B3 (Table 4's comparison rows), compound-scaled from B0; any policy
    # composes on them (hcnet.hc_net('efficientnet_b1', policy='adjacent'))
    'hc_effb1_m23_i0': (_B1, dict(policy='none'), 'None: EfficientNet-B1'),
    'hc_effb2_m23_i0': (_B2, dict(policy='none'), 'None: EfficientNet-B2'),
    'hc_effb3_m26_i0': (_B3, dict(policy='none'), 'None: EfficientNet-B3'),
}


def _constructor(name, base, recipe, what):
    def build(**kwargs):
        return hc_net(base, name=name, **dict(recipe, **kwargs))
    build.__name__ = name
    build.__doc__ = ('%s on %s. Keyword arguments: see hcnet.hc_net.'
                     % (what, base))
    build.base = base
    build.recipe = recipe
    return build


for _name, (_base, _recipe, _what) in HC_RECIPES.items():
    register_model(_constructor(_name, _base, _recipe, _what), cfg=hc_cfg(_base))
