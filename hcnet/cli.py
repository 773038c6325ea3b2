"""``hcnet``: one command for every tool (also ``python -m hcnet``).

Each subcommand is a module with ``main(argv)``; ``hcnet SUBCOMMAND --help`` shows its
options and examples. The files in ``scripts/`` call the same functions.
"""
import importlib
import sys

__all__ = ['COMMANDS', 'main', 'run']

#: subcommand -> (module with main(argv), one line of help)
COMMANDS = {
    'train': ('hcnet.commands.train', 'train from a config, on one machine or under horovodrun'),
    'eval': ('hcnet.commands.eval', 'top-1 / top-5 of a checkpoint or zoo network on a dataset'),
    'describe': ('hcnet.commands.describe', "a network's pattern, block counts, MAdds, params"),
    'configs': ('hcnet.commands.configs', 'list the configs shipped with hcnet (and yours)'),
    'tables': ('hcnet.commands.tables', "the paper's Tables 1-7 beside our measured complexity"),
    'figure2': ('hcnet.commands.figure2', "the paper's Figure 2 (top-1 vs MAdds), with your runs"),
    'irnet-data': ('hcnet.commands.irnet_data', "IR-Net's dataset: 100 ImageNet classes at 56x56"),
    'export': ('hcnet.commands.export', 'export to MXNet symbol + ONNX, checked against Gluon'),
    'publish': ('hcnet.commands.publish', 'turn a checkpoint into pretrained-store files'),
    'convert': ('hcnet.commands.convert', 'timm / torchvision ImageNet weights into store files'),
    'bench-latency': ('hcnet.bench.latency', 'batch-1 CPU inference latency (Tables 1 and 3)'),
    'profile-latency': ('hcnet.bench.profile', 'where inference time goes, by block kind'),
    'bench-train': ('hcnet.bench.throughput', 'training throughput (img/s) on synthetic data'),
}


def _usage():
    width = max(len(n) for n in COMMANDS)
    lines = ['usage: hcnet SUBCOMMAND [options]   (hcnet SUBCOMMAND --help for each)', '',
             'Hybrid Composition with IdleBlock (Xu et al., 2019) in MXNet/GluonCV.', '',
             'subcommands:']
    lines += ['  %-*s  %s' % (width, name, text) for name, (_, text) in COMMANDS.items()]
    lines += ['', 'examples:',
              '  hcnet train --config fashion_mnist',
              '  hcnet describe hc_m10_i10 --blocks',
              '  hcnet export hc_m5_i10 --pretrained random --fast --out export/']
    return '\n'.join(lines)


def run(command, argv=None):
    """Run subcommand ``command`` with ``argv``; its exit code."""
    module = importlib.import_module(COMMANDS[command][0])
    code = module.main(argv)
    return 0 if code is None else code


def main(argv=None):
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except BrokenPipeError:              # `hcnet ... | head`: the reader left, not an error
        sys.stderr.close()
        return 0


def _main(argv):
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(_usage())
        return 0
    if argv[0] == '--version':
        from . import __version__
        print('hcnet %s' % __version__)
        return 0
    if argv[0] not in COMMANDS:
        print('error: unknown subcommand %r (one of: %s)' % (argv[0], ', '.join(COMMANDS)),
              file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])
