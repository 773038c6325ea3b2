"""The state dicts :mod:`hcnet.convert` knows: which hcnet network each one is, the
constructor arguments that network needs, how its tensors are named and ordered, and
what each published weights file (a "tag") expects of its input.

Every number here is quoted from the source's own code or results, where the comment
says; nothing is measured by hcnet.

* ``timm:mobilenetv3_large_100`` -> ``hc_m15_i0`` (MobileNetV3-Large, the None row);
* ``timm:efficientnet_b0`` -> ``hc_effb0_m16_i0`` (EfficientNet-B0, the None row);
* ``torchvision:mobilenet_v3_large`` -> ``hc_m15_i0`` built with BatchNorm epsilon 1e-3
  (torchvision's ``nn.BatchNorm2d(eps=0.001)``; timm and hcnet use 1e-5);
* ``timm:efficientnet_b1`` / ``_b2`` / ``_b3`` -> ``hc_effb1_m23_i0`` / ``hc_effb2_m23_i0``
  / ``hc_effb3_m26_i0`` (EfficientNet-B1..B3, B0 compound-scaled as timm scales it).

A tag's ``input_size`` / ``crop_ratio`` are timm's ``pretrained_cfg`` ``input_size`` /
``crop_pct`` (what ``timm.data.resolve_data_config`` gives by default) and ``top1`` is
the results CSV's row at that size. Where the config also names a ``test_input_size`` /
``test_crop_pct`` (timm's validate.py evaluates there unless told otherwise) the tag keeps
it and that row's top-1 as ``test_input_size`` / ``test_crop_ratio`` / ``test_top1``. The
B1..B3 weights were not made at the EfficientNet paper's 240 / 260 / 300 px (hcnet's
``default_cfg`` of those networks): timm's are 240 / 256 / 288 px (test 288 / 288 / 320).

timm's ``tf_efficientnet_b0`` (TensorFlow "same" padding, epsilon 1e-3) is not among
them: hcnet's convolutions pad symmetrically, so its weights would need a padding
variant of the network.
"""
from collections import namedtuple

__all__ = ['SOURCES', 'Source', 'Tag', 'get_source', 'source_names', 'SourceError']


class SourceError(ValueError):
    """An unknown source or tag (one line)."""


#: what one published weights file expects: input size, normalisation (RGB in [0, 1]),
#: evaluation crop (resize the shorter side to input_size / crop_ratio, centre crop),
#: resize interpolation, where it is published, and the top-1 its source reports
Tag = namedtuple('Tag', 'name input_size mean std crop_ratio interpolation files url top1 '
                        'top1_where test_input_size test_crop_ratio test_top1',
                 defaults=(None, None, None))

#: a state-dict layout: library, model name, the hcnet network, its constructor
#: arguments, licence, the tags and the default tag
Source = namedtuple('Source', 'key library model hcnet kwargs licence licence_note tags '
                              'default_tag layout')

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_INCEPTION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
_TIMM_RESULTS = ('timm results/results-imagenet.csv (huggingface/pytorch-image-models, '
                 'commit 4e5207c)')
_TIMM_LICENCE_NOTE = ("timm's pretrained_cfg says license 'apache-2.0'; timm's README: "
                      "'one should assume that the original dataset license applies to the "
                      "weights' (ImageNet: non-commercial research)")
_TV_LICENCE_NOTE = ("torchvision's code is BSD-3-Clause; its README: 'The pre-trained models "
                    "provided in this library may have their own licenses or terms and "
                    "conditions derived from the dataset used for training'")


def _timm_tag(model, tag, mean_std, crop, top1, files=None, url=None, interpolation='bicubic',
              size=224, test=(None, None, None)):
    hub = 'timm/%s.%s' % (model, tag)
    return Tag(tag, size, mean_std[0], mean_std[1], crop, interpolation,
               tuple(files or ()) + ('%s: model.safetensors, pytorch_model.bin' % hub,),
               url, top1, _TIMM_RESULTS, *test)


_TIMM_RELEASES = 'https://github.com/rwightman/pytorch-image-models/releases/download/'

_MBV3_TAGS = (
    # timm/models/mobilenetv3.py default_cfgs; top-1 at 224 from the results CSV
    _timm_tag('mobilenetv3_large_100', 'ra_in1k', _IMAGENET, 0.875, 75.784,
              files=['mobilenetv3_large_100_ra-f55367f5.pth'],
              url=_TIMM_RELEASES + 'v0.1-weights/mobilenetv3_large_100_ra-f55367f5.pth'),
    _timm_tag('mobilenetv3_large_100', 'ra4_e3600_r224_in1k', _INCEPTION, 0.95, 76.310,
              test=(256, 1.0, 77.182)),
    _timm_tag('mobilenetv3_large_100', 'miil_in21k_ft_in1k', ((0.0,) * 3, (1.0,) * 3), 0.875,
              77.920, files=['mobilenetv3_large_100_1k_miil_78_0-66471c13.pth'],
              url=_TIMM_RELEASES + 'v0.1-tresnet/mobilenetv3_large_100_1k_miil_78_0-66471c13.pth',
              interpolation='bilinear'),
)
_EFFB0_TAGS = (
    _timm_tag('efficientnet_b0', 'ra_in1k', _IMAGENET, 0.875, 77.698,
              files=['efficientnet_b0_ra-3dd342df.pth'],
              url=_TIMM_RELEASES + 'v0.1-weights/efficientnet_b0_ra-3dd342df.pth'),
    _timm_tag('efficientnet_b0', 'ra4_e3600_r224_in1k', _INCEPTION, 0.9, 78.568,
              test=(256, 1.0, 79.364)),
)
# timm/models/efficientnet.py default_cfgs (timm 1.0.31); the first tag of a model is its
# default. top-1 at input_size / crop_pct and at test_input_size / test_crop_pct from the
# results CSV (both rows are there)
_EFFB1_TAGS = (
    _timm_tag('efficientnet_b1', 'ra4_e3600_r240_in1k', _INCEPTION, 0.9, 80.404, size=240,
              test=(288, 1.0, 81.444)),
    _timm_tag('efficientnet_b1', 'ft_in1k', _IMAGENET, 0.875, 77.592,
              files=['efficientnet_b1-533bc792.pth'],
              url=_TIMM_RELEASES + 'v0.1-weights/efficientnet_b1-533bc792.pth',
              test=(256, 1.0, 78.806)),
)
_EFFB2_TAGS = (
    _timm_tag('efficientnet_b2', 'ra_in1k', _IMAGENET, 0.875, 79.324, size=256,
              files=['efficientnet_b2_ra-bcdf34b7.pth'],
              url=_TIMM_RELEASES + 'v0.1-weights/efficientnet_b2_ra-bcdf34b7.pth',
              test=(288, 1.0, 80.612)),
)
_EFFB3_TAGS = (
    _timm_tag('efficientnet_b3', 'ra2_in1k', _IMAGENET, 0.875, 81.472, size=288,
              files=['efficientnet_b3_ra2-cf984f9c.pth'],
              url=_TIMM_RELEASES + 'v0.1-weights/efficientnet_b3_ra2-cf984f9c.pth',
              test=(320, 1.0, 82.296)),
)
_TV_WHERE = ('torchvision MobileNet_V3_Large_Weights.%s.meta["_metrics"]["ImageNet-1K"]'
             '["acc@1"] (torchvision/models/mobilenetv3.py)')
_TV_TAGS = (
    # torchvision/models/mobilenetv3.py: ImageClassification(crop_size=224[, resize_size=232]),
    # bilinear, ImageNet mean / std
    Tag('IMAGENET1K_V1', 224, _IMAGENET[0], _IMAGENET[1], 224 / 256.0, 'bilinear',
        ('mobilenet_v3_large-8738ca79.pth',),
        'https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth', 74.042,
        _TV_WHERE % 'IMAGENET1K_V1'),
    Tag('IMAGENET1K_V2', 224, _IMAGENET[0], _IMAGENET[1], 224 / 232.0, 'bilinear',
        ('mobilenet_v3_large-5c1a4163.pth',),
        'https://download.pytorch.org/models/mobilenet_v3_large-5c1a4163.pth', 75.274,
        _TV_WHERE % 'IMAGENET1K_V2'),
)

SOURCES = {
    'timm:mobilenetv3_large_100': Source(
        'timm:mobilenetv3_large_100', 'timm', 'mobilenetv3_large_100', 'hc_m15_i0', {},
        'Apache-2.0', _TIMM_LICENCE_NOTE, {t.name: t for t in _MBV3_TAGS}, 'ra_in1k', 'timm'),
    'timm:efficientnet_b0': Source(
        'timm:efficientnet_b0', 'timm', 'efficientnet_b0', 'hc_effb0_m16_i0', {},
        'Apache-2.0', _TIMM_LICENCE_NOTE, {t.name: t for t in _EFFB0_TAGS}, 'ra_in1k', 'timm'),
    'torchvision:mobilenet_v3_large': Source(
        'torchvision:mobilenet_v3_large', 'torchvision', 'mobilenet_v3_large', 'hc_m15_i0',
        {'norm_kwargs': {'epsilon': 1e-3}}, 'BSD-3-Clause', _TV_LICENCE_NOTE,
        {t.name: t for t in _TV_TAGS}, 'IMAGENET1K_V2', 'torchvision_mobilenetv3'),
    'timm:efficientnet_b1': Source(
        'timm:efficientnet_b1', 'timm', 'efficientnet_b1', 'hc_effb1_m23_i0', {},
        'Apache-2.0', _TIMM_LICENCE_NOTE, {t.name: t for t in _EFFB1_TAGS},
        'ra4_e3600_r240_in1k', 'timm'),
    'timm:efficientnet_b2': Source(
        'timm:efficientnet_b2', 'timm', 'efficientnet_b2', 'hc_effb2_m23_i0', {},
        'Apache-2.0', _TIMM_LICENCE_NOTE, {t.name: t for t in _EFFB2_TAGS}, 'ra_in1k', 'timm'),
    'timm:efficientnet_b3': Source(
        'timm:efficientnet_b3', 'timm', 'efficientnet_b3', 'hc_effb3_m26_i0', {},
        'Apache-2.0', _TIMM_LICENCE_NOTE, {t.name: t for t in _EFFB3_TAGS}, 'ra2_in1k', 'timm'),
}

def source_names():
    """Every ``LIBRARY:MODEL`` the converter knows."""
    return sorted(SOURCES)


def get_source(spec, file_name=None):
    """(Source, Tag, how the tag was chosen) for ``LIBRARY:MODEL[.TAG]``.

    Without a tag, a file named as a release file (``mobilenet_v3_large-8738ca79.pth``)
    picks its tag; any other file gets the source's default tag (timm's and
    torchvision's own default)."""
    spec = (spec or '').strip()
    key, _, tag = spec.partition('.') if spec.count(':') == 1 else (spec, '', '')
    key = key.lower()
    if key not in SOURCES:
        raise SourceError('unknown --source %r: one of %s (optionally .TAG)'
                          % (spec, ', '.join(source_names())))
    source = SOURCES[key]
    if tag:
        found = {t.lower(): t for t in source.tags}.get(tag.lower())
        if found is None:
            raise SourceError('%s has no weights tagged %r: one of %s'
                              % (key, tag, ', '.join(source.tags)))
        return source, source.tags[found], 'given'
    if file_name:
        base = file_name.rsplit('/', 1)[-1]
        for t in source.tags.values():
            if any(base == f for f in t.files if '/' not in f and ':' not in f):
                return source, t, 'file name %s' % base
    return source, source.tags[source.default_tag], 'default'
