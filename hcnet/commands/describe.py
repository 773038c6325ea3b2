"""Print a network's resolved pattern, M/I counts, MAdds and params.

    hcnet describe hc_m10_i10                        # a zoo name
    hcnet describe hc_m10_i10 hc_effb0_m16_i14 --blocks
    hcnet describe --base mobilenetv3_large --policy adjacent --budget 5
    hcnet describe --base efficientnet_b0 --pattern "M|MI|MI|MII|MII|MIII|M"
"""
import argparse
import sys


from ..arch import BASE_SPECS, POLICIES
from ..complexity import count
from ..model_zoo import get_model, get_model_cfg, hc_net, list_models


def describe(net, title, input_size, blocks=False):
    cx = count(net, input_size)
    if getattr(net, 'base', None) is None:     # not a hybrid-composition network
        print('%s  (%dx%d)\n  standard: %.2f M MAdds, %.3f M params\n'
              % ((title, input_size, input_size) + cx.standard()))
        return
    std, paper = cx.standard(), cx.paper_for(net.base)
    print('%s  (%s, %dx%d)' % (title, net.base.title, input_size, input_size))
    print('  pattern : %s' % net.pattern)
    print('  blocks  : M=%d  I=%d' % (net.pattern.num_mb, net.pattern.num_idle))
    print('  standard: %.2f M MAdds, %.3f M params (trainable / 1e6, SE included)' % std)
    print('  paper   : %.2f M MAdds, %.3f M Params (paper convention)' % paper)
    if blocks:
        print('  %-14s %-4s %4s %4s %4s %2s %2s %4s %-6s %9s %9s' % (
            'block', 'kind', 'in', 'exp', 'out', 'k', 's', 'se', 'act', 'MAdds(M)', 'params'))
        for spec in net.block_specs:
            kind = spec.kind if spec.kind == 'M' else (('S' if spec.shuffle else 'I') + spec.side)
            row = cx.blocks.get(spec.name, {'madds': 0, 'params': 0})
            print('  %-14s %-4s %4d %4d %4d %2d %2d %4d %-6s %9.3f %9d' % (
                spec.name, kind, spec.in_channels, spec.exp_channels, spec.out_channels,
                spec.kernel, spec.stride, spec.se_channels, spec.act, row['madds'] / 1e6,
                row['params']))
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet describe', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument('models', nargs='*', help='zoo names (see --list)')
    parser.add_argument('--list', action='store_true', help='list the zoo names')
    parser.add_argument('--base', choices=sorted(BASE_SPECS), help='compose on this base')
    parser.add_argument('--policy', default='none', choices=POLICIES)
    parser.add_argument('--budget', type=int, help='adjacent: number of IdleBlocks (greedy)')
    parser.add_argument('--insert', default='I', choices=('I', 'M'), help='deeper: new blocks')
    parser.add_argument('--count', type=int, default=1, help='deeper: blocks per position')
    parser.add_argument('--at', default='adjacent', choices=('adjacent', 'all'))
    parser.add_argument('--sides', choices=('L', 'R', 'LR'))
    parser.add_argument('--block', default='idle', choices=('idle', 'isb'))
    parser.add_argument('--pattern', help="explicit pattern, e.g. 'M | M I | ...'")
    parser.add_argument('--input-size', type=int, default=None,
                        help="input height = width (default: the model's own, e.g. 56 for "
                             "IR-Net; 224 with --base)")
    parser.add_argument('--blocks', action='store_true', help='per-block table')
    args = parser.parse_args(argv)

    if args.list:
        print('\n'.join(list_models()))
        return 0
    if not args.models and not args.base:
        parser.error('name a zoo model or give --base (see --list)')
    try:
        for name in args.models:
            describe(get_model(name), name, args.input_size or get_model_cfg(name).input_size,
                     args.blocks)
        if args.base:
            net = hc_net(args.base, policy=args.policy, budget=args.budget, insert=args.insert,
                         count=args.count, at=args.at, sides=args.sides, block=args.block,
                         pattern=args.pattern)
            title = 'pattern' if args.pattern else 'policy %s' % args.policy
            describe(net, title, args.input_size or 224, args.blocks)
    except ValueError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    return 0

