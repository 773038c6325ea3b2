#!/usr/bin/env python
"""Developer tool: write the fixtures of tests/test_convert.py with the real torch, timm
and torchvision (a separate environment: they are no dependency of hcnet, and torch
must not enter hcnet's environment, whose mxnet needs numpy<1.24).

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch torchvision timm safetensors numpy
    /tmp/torchenv/bin/python scripts/make_convert_fixtures.py --out tests/data
    /tmp/torchenv/bin/python scripts/make_convert_fixtures.py --out tests/data --full /tmp/full

For each source (timm mobilenetv3_large_100, timm efficientnet_b0, torchvision
mobilenet_v3_large, timm efficientnet_b1, efficientnet_b2, efficientnet_b3) it builds the
reference network without pretrained weights, gives it seeded random weights (numpy's
RandomState, whose stream is fixed across numpy versions: He-normal convolutions, normal
Linear layers, uniform BatchNorm affine and biases), calibrates every BatchNorm's
statistics on seeded noise and randomises them (variance x U(0.6, 1.6), mean + N(0, 0.2)
std), and runs a fixed 2x3x64x64 input in eval mode, in float64. The calibration is
train mode with a cumulative average, all statistics randomised afterwards, for the first
three (``calibrate_train``); for EfficientNet-B1..B3 it is one eval-mode pass in which each
BatchNorm takes its statistics from what the randomised layers before it give it
(``calibrate_forward``): the first way lets the perturbations compound with depth, and
B3's logits reach 2.5e3 with torch's own float32 0.24 relative off its float64, which no
float32 reproduction can meet within 1e-4. It writes

* ``convert_<source>.json``: the state dict's keys in torch's order with shape, dtype and
  how each tensor was drawn, the seed, the sha256 of all tensors, the versions used, and
  torch's own float32-vs-float64 difference on the input (the float32 noise floor);
* ``convert_<source>.npz``: the input, the float64 reference logits, torch's float32
  logits, and the BatchNorm statistics (the only tensors not drawn from the seed).

The full weight sets (21 MB to 49 MB each in float32) are not stored: the test draws them
again from the seed, checks their sha256 against the manifest, writes them as a
.safetensors file and converts it. ``--full DIR`` also writes each state dict as
torch.save zip (.pth), legacy torch.save (.pth) and .safetensors into DIR, for trying
``hcnet convert`` on files torch itself wrote.

It also writes ``convert_torch_reader.pth`` (torch.save's zip format),
``convert_torch_reader_legacy.pth`` (the pre-1.6 format) and ``convert_torch_reader.npz``
(their tensors as numpy): a few tensors of every kind the reader meets (float32/16/64,
bfloat16, int64, bool, a 0-d tensor, a transposed view, a slice sharing storage, an
nn.Parameter, a state dict's ``_metadata``).

Not imported by hcnet or its tests; it imports no hcnet.
"""
import argparse
import hashlib
import json
import os
import platform
from collections import OrderedDict

import numpy as np
import torch

SEED = 17
INPUT_SHAPE = (2, 3, 64, 64)
CALIBRATION_BATCHES = 4

#: fixture name -> (hcnet convert --source, hcnet zoo name, constructor kwargs)
FIXTURES = OrderedDict([
    ('timm_mobilenetv3_large_100', ('timm:mobilenetv3_large_100', 'hc_m15_i0', {})),
    ('timm_efficientnet_b0', ('timm:efficientnet_b0', 'hc_effb0_m16_i0', {})),
    ('torchvision_mobilenet_v3_large', ('torchvision:mobilenet_v3_large', 'hc_m15_i0',
                                        {'norm_kwargs': {'epsilon': 1e-3}})),
    ('timm_efficientnet_b1', ('timm:efficientnet_b1', 'hc_effb1_m23_i0', {})),
    ('timm_efficientnet_b2', ('timm:efficientnet_b2', 'hc_effb2_m23_i0', {})),
    ('timm_efficientnet_b3', ('timm:efficientnet_b3', 'hc_effb3_m26_i0', {})),
])

#: the manifest's note on statistics made by calibrate_forward (the others have none)
BN_STATISTICS = ('eval-mode pass over the calibration noise in float64: each BatchNorm takes '
                 'the mean and unbiased variance of its input, then variance x U(0.6, 1.6), '
                 'mean + N(0, 0.2) std')

#: how each fixture's BatchNorm statistics are made (see calibrate_train / calibrate_forward);
#: the first three keep the method they were written with, so that they come out the same
CALIBRATION = {'timm_efficientnet_b1': 'forward', 'timm_efficientnet_b2': 'forward',
               'timm_efficientnet_b3': 'forward'}


def build(source):
    library, model = source.split(':')
    if library == 'timm':
        import timm
        return timm.create_model(model, pretrained=False, num_classes=1000)
    import torchvision
    return getattr(torchvision.models, model)(weights=None)


def init_spec(module, param, shape):
    """How a tensor is drawn: [normal, mean, std] / [uniform, low, high] / [stats]."""
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        if param == 'weight':
            return ['uniform', 0.5, 1.5]
        if param == 'bias':
            return ['uniform', -0.2, 0.2]
        if param in ('running_mean', 'running_var'):
            return ['stats']
        if param == 'num_batches_tracked':
            return ['count']
    if isinstance(module, torch.nn.Conv2d) and param == 'weight':
        fan_in = shape[1] * shape[2] * shape[3]
        return ['normal', 0.0, float(np.sqrt(2.0 / fan_in))]
    if isinstance(module, torch.nn.Linear) and param == 'weight':
        return ['normal', 0.0, float(np.sqrt(1.0 / shape[1]))]
    if param == 'bias':
        return ['uniform', -0.1, 0.1]
    raise ValueError('no rule for %s of %s' % (param, type(module).__name__))


def draw(tensors, seed):
    """The seeded tensors of a manifest (tests/test_convert.py draws them the same way)."""
    rng = np.random.RandomState(seed)
    out = OrderedDict()
    for name, shape, dtype, init in tensors:
        if init[0] == 'normal':
            out[name] = rng.normal(init[1], init[2], shape).astype(np.float32)
        elif init[0] == 'uniform':
            out[name] = rng.uniform(init[1], init[2], shape).astype(np.float32)
    return out


def digest(arrays):
    """sha256 over the tensors in order: name, dtype, shape, little-endian bytes."""
    h = hashlib.sha256()
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        h.update(('%s|%s|%s|' % (name, a.dtype.str, list(a.shape))).encode())
        h.update(a.astype(a.dtype.newbyteorder('<')).tobytes())
    return h.hexdigest()


def rel_diff(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _calibration_batches():
    calib = np.random.RandomState(SEED + 2)
    return [calib.uniform(-2, 2, (8,) + INPUT_SHAPE[1:]).astype(np.float32)
            for _ in range(CALIBRATION_BATCHES)]


def _perturbed(perturb, mean, var):
    """Randomised statistics: variance x U(0.6, 1.6), mean + N(0, 0.2) std."""
    var = var * perturb.uniform(0.6, 1.6, var.shape)
    mean = mean + perturb.normal(0, 0.2, mean.shape) * np.sqrt(var)
    return mean.astype(np.float32), var.astype(np.float32)


def _bns(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def calibrate_train(model):
    """Every BatchNorm's statistics from the calibration batches in train mode (cumulative
    average), then all of them randomised. Downstream statistics are those of the
    unperturbed network, so in eval mode every perturbation shifts what the next layers
    see: activations grow with depth (fine for MobileNetV3 and B0; B3's logits reach 2.5e3
    and torch's own float32 misses its float64 by 0.24 relative)."""
    bns = _bns(model)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                     # cumulative average over the batches
    model.train()
    for batch in _calibration_batches():
        model(torch.from_numpy(batch))
    perturb = np.random.RandomState(SEED + 1)
    for m in bns:
        mean, var = _perturbed(perturb, m.running_mean.numpy().astype(np.float64),
                               m.running_var.numpy().astype(np.float64))
        m.running_var.copy_(torch.from_numpy(var))
        m.running_mean.copy_(torch.from_numpy(mean))


def calibrate_forward(model):
    """One eval-mode pass over all calibration batches (float64) in which each BatchNorm,
    when the pass reaches it, takes the mean and (unbiased) variance of its input -- the
    outputs of the layers before it, already randomised -- randomised the same way, as
    its statistics. Every layer then sees inputs its statistics roughly fit, at any
    depth: the deeper networks (EfficientNet-B1..B3) stay well conditioned."""
    bns = _bns(model)
    perturb = np.random.RandomState(SEED + 1)
    seen = []

    def pre_hook(module, inputs):
        if any(module is m for m in seen):
            raise RuntimeError('a BatchNorm called twice in one pass')
        seen.append(module)
        x = inputs[0].double()
        mean, var = _perturbed(perturb, x.mean((0, 2, 3)).numpy(),
                               x.var((0, 2, 3), unbiased=True).numpy())
        module.running_mean.copy_(torch.from_numpy(mean).to(module.running_mean.dtype))
        module.running_var.copy_(torch.from_numpy(var).to(module.running_var.dtype))

    hooks = [m.register_forward_pre_hook(pre_hook) for m in bns]
    try:
        model.double().eval()
        model(torch.from_numpy(np.concatenate(_calibration_batches())).double())
    finally:
        for h in hooks:
            h.remove()
        model.float()
    if len(seen) != len(bns):
        raise RuntimeError('the pass met %d of %d BatchNorms' % (len(seen), len(bns)))


def make(name, source, hcnet_name, kwargs, out, full=None):
    torch.manual_seed(0)
    model = build(source)
    modules = dict(model.named_modules())
    state = model.state_dict()
    tensors = []
    for key, value in state.items():
        owner, _, param = key.rpartition('.')
        tensors.append([key, list(value.shape), str(value.dtype).replace('torch.', ''),
                        init_spec(modules[owner], param, list(value.shape))])
    drawn = draw(tensors, SEED)
    calibration = CALIBRATION.get(name, 'train')
    with torch.no_grad():
        for key, value in drawn.items():
            state[key].copy_(torch.from_numpy(value))
        (calibrate_forward if calibration == 'forward' else calibrate_train)(model)
    model.eval()
    final = OrderedDict((k, v.detach().cpu().numpy()) for k, v in model.state_dict().items())
    for entry in tensors:
        if entry[3][0] == 'count':
            entry[3] = ['count', int(final[entry[0]])]
    x = np.random.RandomState(SEED + 3).uniform(-2, 2, INPUT_SHAPE).astype(np.float32)
    with torch.no_grad():
        y32 = model(torch.from_numpy(x)).numpy()
        y64 = model.double()(torch.from_numpy(x).double()).numpy()
    stats = {'stats/' + k: final[k] for k, _, _, init in tensors if init[0] == 'stats'}
    np.savez_compressed(os.path.join(out, 'convert_%s.npz' % name), input=x, logits=y64,
                        logits_torch_float32=y32, **stats)
    import timm
    import torchvision
    manifest = OrderedDict([
        ('source', source), ('hcnet', hcnet_name), ('kwargs', kwargs), ('seed', SEED),
        ('input_shape', list(INPUT_SHAPE)),
        ('reference', 'eval-mode logits in float64 of the reference network with these '
                      'weights (logits in the .npz)'),
    ] + ([('bn_statistics', BN_STATISTICS)] if calibration == 'forward' else []) + [
        ('torch_float32_vs_float64', rel_diff(y32, y64)),
        ('logits_max_abs', float(np.abs(y64).max())),
        ('sha256', digest(final)),
        ('made_with', {'torch': torch.__version__, 'timm': timm.__version__,
                       'torchvision': torchvision.__version__, 'numpy': np.__version__,
                       'python': platform.python_version()}),
        ('tensors', tensors),
    ])
    head = json.dumps(OrderedDict((k, v) for k, v in manifest.items() if k != 'tensors'),
                      indent=1)
    with open(os.path.join(out, 'convert_%s.json' % name), 'w') as f:   # a tensor a line
        f.write(head[:-2] + ',\n "tensors": [\n'
                + ',\n'.join('  ' + json.dumps(t) for t in tensors) + '\n ]\n}\n')
    if full:
        os.makedirs(full, exist_ok=True)
        sd = OrderedDict((k, torch.from_numpy(v)) for k, v in final.items())
        torch.save(sd, os.path.join(full, '%s.pth' % name))
        torch.save(sd, os.path.join(full, '%s_legacy.pth' % name),
                   _use_new_zipfile_serialization=False)
        from safetensors.torch import save_file
        save_file(sd, os.path.join(full, '%s.safetensors' % name))
        np.savez(os.path.join(full, '%s_ref.npz' % name), input=x, logits=y64)
    print('%s: %d tensors, logits max |%.3g|, torch float32 vs float64 %.3g'
          % (name, len(tensors), np.abs(y64).max(), rel_diff(y32, y64)))


def make_reader_fixture(out):
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    sd = conv.state_dict()                  # an OrderedDict with _metadata, as real ones
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for v in sd.values():
            if v.is_floating_point():
                v.copy_(torch.randn(v.shape, generator=g))
    big = torch.arange(20, dtype=torch.float32)
    sd['half'] = torch.randn(5, generator=g).half()
    sd['double'] = torch.randn(2, 3, generator=g).double()
    sd['bf16'] = torch.randn(4, generator=g).bfloat16()
    sd['long'] = torch.tensor(7)
    sd['bool'] = torch.tensor([True, False, True])
    sd['scalar'] = torch.tensor(2.5)
    sd['transposed'] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    sd['big'] = big
    sd['slice'] = big[5:11]                 # a view at offset 5 of big's storage
    sd['param'] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    torch.save(sd, os.path.join(out, 'convert_torch_reader.pth'))
    torch.save(sd, os.path.join(out, 'convert_torch_reader_legacy.pth'),
               _use_new_zipfile_serialization=False)
    expected = OrderedDict((k, (v.float() if v.dtype == torch.bfloat16 else v).detach()
                            .contiguous().numpy()) for k, v in sd.items())
    np.savez(os.path.join(out, 'convert_torch_reader.npz'), _order=np.array(list(expected)),
             **expected)
    print('reader fixture: %d tensors' % len(expected))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='tests/data', help='fixture directory')
    parser.add_argument('--full', default=None,
                        help='also write the full state dicts (.pth, legacy .pth, '
                             '.safetensors) into this directory')
    parser.add_argument('--only', default=None, help='one fixture name')
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    for name, (source, hcnet_name, kwargs) in FIXTURES.items():
        if args.only in (None, name):
            make(name, source, hcnet_name, kwargs, args.out, args.full)
    if args.only in (None, 'reader'):
        make_reader_fixture(args.out)


if __name__ == '__main__':
    main()
