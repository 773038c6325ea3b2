"""Convert timm / torchvision ImageNet weights into pretrained-store files (no torch needed).

    hcnet convert model.safetensors --source timm:mobilenetv3_large_100 --out store/
    hcnet convert efficientnet_b0_ra-3dd342df.pth --source timm:efficientnet_b0 --out store/
    hcnet convert efficientnet_b3_ra2-cf984f9c.pth --source timm:efficientnet_b3 --out store/
    hcnet convert mobilenet_v3_large-5c1a4163.pth --source torchvision:mobilenet_v3_large \\
        --name hc_m15_i0 --out store/
    hcnet convert --list-sources
    python -m http.server --directory store 8000
    HCNET_REPO_URL=http://HOST:8000/ python -c \\
        "import hcnet; hcnet.get_model('hc_m15_i0', pretrained=True)"

FILE is a .safetensors file (read with the safetensors package's numpy API) or a
PyTorch .pth / .bin state dict, read by an unpickler that accepts only tensors and plain
containers and never runs code: a file whose pickle names anything else is refused.
--source names its layout, LIBRARY:MODEL[.TAG]: timm:mobilenetv3_large_100 and
torchvision:mobilenet_v3_large become hc_m15_i0 (torchvision's with BatchNorm epsilon
1e-3, stored in the entry's kwargs), timm:efficientnet_b0 becomes hc_effb0_m16_i0, and
timm:efficientnet_b1 / _b2 / _b3 become hc_effb1_m23_i0 / hc_effb2_m23_i0 / hc_effb3_m26_i0
(their weights expect 240 / 256 / 288 px, timm's sizes, not the paper's 240 / 260 / 300;
the entry carries timm's). The TAG says which published weights the file is (their mean / std / crop differ); without
one, a release file name picks it, else the library's default tag (--list-sources shows
them all).

Every tensor is mapped by explicit rules, its role and shape checked; the store gets
STORE/<name>-<sha1[:8]>.params (--zip: a .zip holding it) and the index entry, as
hcnet publish writes them: dataset imagenet, 1000 classes and ImageNet-1k's synset,
input size, mean / std, crop, interpolation, constructor kwargs, the source (library,
model, tag, file sha256, the top-1 the source reports) and its licence.

A file that cannot be read, does not map (named tensor), or a store that cannot be
written ends with one line on stderr and exit code 2, with nothing written.
"""
import argparse
import os
import sys

from ..convert import SOURCES, ConvertError, convert_file


def _test_size(tag):
    if tag.test_input_size is None:
        return ''
    return ', %.3f at its test size %d px, crop %.4f' % (tag.test_top1, tag.test_input_size,
                                                         tag.test_crop_ratio)


def _list_sources():
    lines = []
    for key in sorted(SOURCES):
        src = SOURCES[key]
        kwargs = (' kwargs %s' % src.kwargs) if src.kwargs else ''
        lines.append('%s -> %s%s (%s)' % (key, src.hcnet, kwargs, src.licence))
        for tag in src.tags.values():
            lines.append('  .%-22s %s%d px, crop %.4f, mean %s, std %s, %s; top-1 %.3f%s (%s)'
                         % (tag.name, '(default) ' if tag.name == src.default_tag else '',
                            tag.input_size, tag.crop_ratio, list(tag.mean), list(tag.std),
                            tag.interpolation, tag.top1, _test_size(tag), tag.top1_where))
            for f in tag.files:
                lines.append('      %s' % f)
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet convert', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('file', nargs='?', help='a .safetensors, .pth or .bin state dict')
    parser.add_argument('--source', help='LIBRARY:MODEL[.TAG], one of: %s'
                                         % ', '.join(sorted(SOURCES)))
    parser.add_argument('--name', help="hcnet zoo name (default: the source's network)")
    parser.add_argument('--out', help='store directory (created if needed)')
    parser.add_argument('--zip', action='store_true',
                        help='publish a .zip holding the .params file instead of the bare file')
    parser.add_argument('--list-sources', action='store_true',
                        help='list the sources, their tags and published files, and exit')
    args = parser.parse_args(argv)
    if args.list_sources:
        print(_list_sources())
        return 0
    for what, value in (('FILE', args.file), ('--source', args.source), ('--out', args.out)):
        if not value:
            parser.error('%s is required' % what)
    try:
        entry, converted = convert_file(args.file, args.source, args.out, args.name, args.zip)
    except ConvertError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    tag, src = converted.tag, converted.source
    print('converted %s (%s.%s, %d tensors) into %s: %s (sha1 %s)'
          % (args.file, src.key, tag.name, converted.tensors, converted.name,
             os.path.join(args.out, entry['file']), entry['sha1']))
    if converted.tag_chosen_by == 'default':
        print('note: no .TAG given and %s is no release file name: taken as %s\'s default '
              'weights, %s (other weights: --source %s.TAG, see --list-sources)'
              % (os.path.basename(args.file), src.library, tag.name, src.key))
    print('input: %d px, crop %.4f, %s, mean %s, std %s%s; the source reports top-1 %.3f%s'
          % (tag.input_size, tag.crop_ratio, tag.interpolation, list(tag.mean), list(tag.std),
             (', kwargs %s' % converted.kwargs) if converted.kwargs else '', tag.top1,
             _test_size(tag)))
    print('use: %s=<URL of %s> ... hcnet.get_model(%r, pretrained=True)'
          % ('HCNET_REPO_URL', os.path.abspath(args.out), converted.name))
    return 0
