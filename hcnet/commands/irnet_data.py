"""Make IR-Net's dataset: 100 ImageNet classes downsampled by 4 to 56x56 image folders.

    hcnet irnet-data /data/imagenet                  # -> ~/.mxnet/datasets/imagenet100_56
    hcnet irnet-data /data/imagenet --out /data/imagenet100_56 --workers 8 --rec
    hcnet train --config irnet_a data.root=/data/imagenet100_56

Reads ROOT/train/<wnid>/*.JPEG and ROOT/val/<wnid>/*.JPEG (validation images sorted into
class folders, as ImageNet's valprep.sh does) for the classes of the class list (default:
the 100 shipped in hcnet/data/irnet100_classes.txt, a seeded draw from ImageNet-1k) and
writes OUT/train/<wnid>/ and OUT/val/<wnid>/ -- the image_folder dataset the IR-Net
configs read (their data.root is this command's default --out) -- plus OUT/classes.txt
and OUT/irnet100.json; --rec also packs OUT/{train,val}.{rec,idx} (imagenet_rec).

Resize rule: the largest centred square of each image, area-resized (PIL BOX) to 56x56,
i.e. the 224x224 view downsampled by 4 (IR-Net: "down sampled by factor of 4").
Images that cannot be decoded are skipped, counted and named in one warning line. Every
file is written under a temporary name and renamed; files already there are kept
(--overwrite redoes them), so a rerun continues an interrupted one. Exit codes: 0 done,
2 bad input (one line), 74 the output cannot be written, 130 interrupted.
"""
import argparse
import sys

from ..data.irnet100 import (CLASS_LIST, DEFAULT_OUT, SIZE, DatasetError, build,
                             read_class_list)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='hcnet irnet-data', description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('root', help='ImageNet directory with train/<wnid>/ and val/<wnid>/')
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='output directory (default %s, the IR-Net configs\' data.root)'
                             % DEFAULT_OUT)
    parser.add_argument('--classes', default=CLASS_LIST, metavar='FILE',
                        help='class list, one WNID per line (default: the shipped 100)')
    parser.add_argument('--size', type=int, default=SIZE, help='output side (default %d)' % SIZE)
    parser.add_argument('--workers', type=int, default=None,
                        help='decoding processes (default: one per core; 0: in this process)')
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality (default 95)')
    parser.add_argument('--rec', action='store_true',
                        help='also write OUT/{train,val}.{rec,idx} (RecordIO, imagenet_rec)')
    parser.add_argument('--overwrite', action='store_true',
                        help='redo images already in OUT (default: keep them)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 0:
        parser.error('--workers must be >= 0')
    try:
        classes = read_class_list(args.classes)
        report = build(args.root, args.out, classes, size=args.size, workers=args.workers,
                       quality=args.quality, rec=args.rec, overwrite=args.overwrite,
                       progress=not args.quiet)
    except DatasetError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    except OSError as err:
        where = ' (%s)' % err.filename if getattr(err, 'filename', None) else ''
        print('error: cannot write the dataset: %s%s' % (err.strerror or err, where),
              file=sys.stderr)
        return 74
    except KeyboardInterrupt:
        print('interrupted (files written so far are complete; rerun to continue)',
              file=sys.stderr)
        return 130
    bad = report['skipped']
    if bad:
        print('warning: skipped %d unreadable image%s: %s%s' % (
            len(bad), '' if len(bad) == 1 else 's', ', '.join(bad[:10]),
            ' (and %d more, listed in irnet100.json)' % (len(bad) - 10) if len(bad) > 10 else ''),
            file=sys.stderr)
    images = report['images']
    print('%s: %d classes at %dx%d, %d train and %d val images (%d converted, %d already '
          'there, %d skipped)%s' % (
              report['out'], report['classes'], report['size'], report['size'],
              images['train'], images['val'], report['converted'], report['kept'], len(bad),
              '; RecordIO: %d train, %d val records' % (report['rec']['train'],
                                                       report['rec']['val'])
              if 'rec' in report else ''))
    return 0
