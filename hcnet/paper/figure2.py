"""The paper's Figure 2 -- ImageNet top-1 against MAdds -- from the reference numbers, with
your own runs on it (``hcnet figure2``).

Figure 2 of the paper plots "ImageNet Top-1 Accuracy / Computation cost trade-off for
small model (MAdds < 600M)": HC on MobileNet v3 against human-designed and NAS networks,
i.e. the rows of Table 2. The figure's drawing is not in the extracted text, so it is
redrawn from the numbers, in two panels:

* (a) Figure 2 proper: Table 2 -- the HC(MobileNet v3) rows (:data:`~.reference.PAPER_ROWS`,
  single-node top-1, and the distributed top-1 as hollow markers) and the comparison
  networks (:data:`~.baselines.BASELINES` with ``table=2``), MAdds < 600 M;
* (b) the same for Table 4 -- the HC(EfficientNet-B0) rows, the 320 px one included, and
  Table 4's comparison networks (baselines with ``table=4`` and the rows of ``PAPER_ROWS``
  quoted from other papers) -- on a logarithmic MAdds axis.

Comparison networks are drawn as human-designed or searched (:data:`SEARCHED`). All of
these points are the papers' quoted figures, not measurements.

A run (a training output directory: ``config.yaml`` and ``metrics.jsonl``, see
:mod:`hcnet.train.loop`) is drawn at its best ``val_top1`` and its MAdds measured from the
network its config builds (``model.name``, ``model.kwargs``, ``model.classes``) at its
``data.input_size``, with :func:`hcnet.count`: in the paper's convention for
hybrid-composition networks (the one that reproduces the tables' MAdds; on MobileNetV3
bases it is not anchored on the None row, which measures 215.1 M where the paper prints
219.4 M), the standard one otherwise. Both are in the Markdown table; so is the run's
dataset -- a top-1 on anything but ImageNet-1k is not comparable with the paper's points
(a run below the paper's range is drawn on the panel's bottom edge, its value in its label).
"""
import json
import os
from dataclasses import dataclass
from typing import List, Optional

from ..fileio import atomic_path, write_text
from .baselines import BASELINES
from .reference import PAPER_ROWS

__all__ = ['Point', 'RunPoint', 'RunError', 'SEARCHED', 'FIGURE2_MAX_MADDS', 'paper_points',
           'read_run', 'draw', 'render_markdown', 'figure2']

#: Figure 2's range: "small model (MAdds < 600M)".
FIGURE2_MAX_MADDS = 600

#: Comparison networks found by architecture search (or, RandomWired, by a network
#: generator); the rest of Tables 2 and 4 are human-designed.
SEARCHED = frozenset(['MobileNet v3', 'FBNet-A', 'FBNet-B', 'FBNet-C', 'Proxyless',
                      'EfficientNet-B0', 'EfficientNet-B1', 'EfficientNet-B2',
                      'EfficientNet-B3', 'NASNet-A', 'NASNet-B', 'NASNet-C', 'RandomWired-WS',
                      'AmoebaNet', 'PNAS', 'DARTS'])


class RunError(Exception):
    """A run directory that cannot be drawn (missing or unreadable files)."""


@dataclass(frozen=True)
class Point:
    """One of the paper's points."""
    table: int
    label: str
    kind: str                  # 'HC' | 'human' | 'searched'
    madds: float               # quoted MAdds (M)
    top1: float                # quoted top-1 (%), single node
    top1_dist: Optional[float] = None
    input_size: int = 224
    model: Optional[str] = None


@dataclass
class RunPoint:
    """A run directory's best top-1 at its measured MAdds."""
    run_dir: str
    model: str
    dataset: str
    classes: int
    input_size: int
    madds: float               # what is drawn (convention below)
    convention: str            # 'paper' (HC networks) | 'standard'
    std_madds: float
    std_params: float
    top1: float                # best val_top1 (%)
    best_epoch: int
    epochs: int                # epoch records in metrics.jsonl

    @property
    def imagenet1k(self):
        """Trained on ImageNet-1k (comparable with the paper's points)?"""
        return self.dataset == 'imagenet_rec' and self.classes == 1000

    @property
    def label(self):
        return '%s (%s%s)' % (os.path.basename(os.path.normpath(self.run_dir)) or self.run_dir,
                              self.model, '' if self.imagenet1k
                              else '; %d-class %s' % (self.classes, self.dataset))


def _label(label, input_size):
    return label + ('' if input_size == 224 else ' %dpx' % input_size)


def paper_points():
    """The paper's points of Tables 2 and 4: the HC rows (the paper's own networks), and
    the comparison networks (:data:`~.baselines.BASELINES` of those tables, and the rows
    of :data:`~.reference.PAPER_ROWS` quoted from other papers), each (table, label) once."""
    hc, others, seen = [], [], set()
    for b in BASELINES:
        if b.table in (2, 4) and b.madds is not None and b.top1 is not None:
            label = b.label or b.network
            seen.add((b.table, label))
            others.append(Point(b.table, _label(label, b.input_size),
                                'searched' if b.network in SEARCHED else 'human',
                                b.madds, b.top1, None, b.input_size, b.model))
    for row in PAPER_ROWS:
        if row.table not in (2, 4) or row.madds is None or row.top1 is None:
            continue
        if getattr(row, 'convention', 'paper') == 'paper':
            hc.append(Point(row.table, _label(row.label, row.input_size), 'HC', row.madds,
                            row.top1, row.top1_dist, row.input_size, row.model))
        elif (row.table, row.label) not in seen:          # quoted from another paper
            seen.add((row.table, row.label))
            network = row.label.split(' [')[0]
            others.append(Point(row.table, _label(row.label, row.input_size),
                                'searched' if network in SEARCHED else 'human', row.madds,
                                row.top1, row.top1_dist, row.input_size, row.model))
    return hc + others


# --------------------------------------------------------------------------------------
# runs

def _read_jsonl(path):
    rows = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:          # the tail a killed process left
                continue
    return rows


def read_run(run_dir):
    """The :class:`RunPoint` of training output directory ``run_dir``."""
    import yaml
    if not os.path.isdir(run_dir):
        raise RunError('run directory %s does not exist' % run_dir)
    cfg_path = os.path.join(run_dir, 'config.yaml')
    metrics_path = os.path.join(run_dir, 'metrics.jsonl')
    for path in (cfg_path, metrics_path):
        if not os.path.isfile(path):
            raise RunError('run directory %s lacks %s (a training output directory holds '
                           'config.yaml and metrics.jsonl)' % (run_dir, os.path.basename(path)))
    try:
        with open(cfg_path, encoding='utf-8') as f:
            cfg = yaml.safe_load(f)
        rows = _read_jsonl(metrics_path)
    except (OSError, yaml.YAMLError) as err:
        raise RunError('cannot read run directory %s: %s' % (run_dir, str(err).splitlines()[0]))
    model, data = (cfg or {}).get('model') or {}, (cfg or {}).get('data') or {}
    if not isinstance(model, dict) or not model.get('name'):
        raise RunError('%s names no model.name' % cfg_path)
    rows = [r for r in rows if isinstance(r, dict) and isinstance(r.get('val_top1'), (int, float))]
    if not rows:
        raise RunError('%s has no epoch with a val_top1 yet' % metrics_path)
    best = max(rows, key=lambda r: r['val_top1'])
    name, classes = model['name'], int(model.get('classes') or 1000)
    size = int(data.get('input_size') or 224)
    from ..complexity import count
    from ..model_zoo import UnknownModelError, create_model
    try:
        net = create_model(name, pretrained=False, **dict(model.get('kwargs') or {},
                                                          classes=classes))
    except (UnknownModelError, TypeError, ValueError) as err:
        raise RunError('%s: cannot build model %r: %s' % (cfg_path, name, err))
    cx = count(net, size)
    std = cx.standard()
    base = getattr(net, 'base', None)
    madds, convention = (cx.paper_for(base)[0], 'paper') if base is not None else (std[0],
                                                                                   'standard')
    return RunPoint(run_dir=run_dir, model=name, dataset=str(data.get('dataset', '?')),
                    classes=classes, input_size=size, madds=madds, convention=convention,
                    std_madds=std[0], std_params=std[1], top1=float(best['val_top1']),
                    best_epoch=int(best.get('epoch', 0)), epochs=len(rows))


# --------------------------------------------------------------------------------------
# drawing

_STYLE = {'HC': dict(color='tab:red', marker='*', s=140, zorder=4),
          'human': dict(color='tab:blue', marker='o', s=45, zorder=3),
          'searched': dict(color='tab:green', marker='s', s=45, zorder=3)}
_KIND_LABEL = {'HC': "the HC paper's rows (hybrid composition)", 'human': 'human-designed',
               'searched': 'searched (NAS)'}


def _placer(ax, xlim, ylim, points_xy, log):
    """Place labels beside their points, each where it overlaps no point and no label
    placed before (boxes in axes fractions, from the axes' size; the first free offset)."""
    import math
    fx = math.log10 if log else (lambda v: v)
    (a, b), (c, d) = [fx(v) for v in xlim], ylim
    pos = ax.get_position()
    wpt = pos.width * ax.figure.get_figwidth() * 72
    hpt = pos.height * ax.figure.get_figheight() * 72

    def norm(x, y):
        return (fx(x) - a) / (b - a), (y - c) / (d - c)

    placed = []
    for u, v in (norm(x, y) for x, y in points_xy):
        placed.append((u - 6 / wpt, v - 6 / hpt, u + 6 / wpt, v + 6 / hpt))
    right = ((5, 3), (5, -11), (5, 11), (5, -19), (5, 19))
    left = tuple((-dx, dy) for dx, dy in right)

    def place(x, y, text, fontsize, **kw):
        ux, uy = norm(x, y)
        w, h = 0.55 * fontsize * len(text) / wpt, 1.1 * fontsize / hpt
        candidates = left + right if ux + 5 / wpt + w > 1 else right + left
        for dx, dy in candidates + ((None, None),):
            if dx is None:                      # nowhere free: the first place that fits
                dx, dy = next((c for c in candidates if 0 <= uy + c[1] / hpt), candidates[0])
                break
            bx = ux + dx / wpt - (w if dx < 0 else 0)
            by = uy + dy / hpt
            box = (bx, by, bx + w, by + h)
            if all(box[2] <= p[0] or box[0] >= p[2] or box[3] <= p[1] or box[1] >= p[3]
                   for p in placed) and 0 <= box[0] and 0 <= box[1] and box[2] <= 1 \
                    and box[3] <= 1:
                break
        bx = ux + dx / wpt - (w if dx < 0 else 0)
        placed.append((bx, uy + dy / hpt, bx + w, uy + dy / hpt + h))
        ax.annotate(text, (x, y), textcoords='offset points', xytext=(dx, dy),
                    ha='right' if dx < 0 else 'left', fontsize=fontsize, **kw)
    return place


def _panel(ax, points, runs, title, log=False):
    import math
    dist = [p for p in points if p.kind == 'HC' and p.top1_dist is not None]
    xs = [p.madds for p in points] + [r.madds for r in runs]
    ys = [p.top1 for p in points] + [r.top1 for r in runs]
    all_y = ys + [p.top1_dist for p in dist]
    if min(xs) >= max(xs):                 # one point: a range around it
        xs = xs + [min(xs) * 0.8, max(xs) * 1.25]
    if log:
        lo, hi = math.log10(min(xs)), math.log10(max(xs))
        xlim = (10 ** (lo - 0.05 * (hi - lo)), 10 ** (hi + 0.06 * (hi - lo)))
    else:
        lo, hi = min(xs), max(xs)
        xlim = (lo - 0.06 * (hi - lo), hi + 0.06 * (hi - lo))
    # the y range is the paper's points' (a run far below them, say a 1-step smoke run,
    # is drawn on the bottom edge with its value in its label)
    paper_y = [p.top1 for p in points] + [p.top1_dist for p in dist]
    y_lo, y_hi = min(paper_y or all_y), max(paper_y or all_y)
    if y_hi - y_lo < 1:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    ylim = (y_lo - 0.05 * (y_hi - y_lo), y_hi + 0.07 * (y_hi - y_lo))
    edge = 0.02 * (ylim[1] - ylim[0])
    shown = [min(max(r.top1, ylim[0] + edge), ylim[1] - edge) for r in runs]
    ys = [p.top1 for p in points] + shown
    if log:
        ax.set_xscale('log')
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    place = _placer(ax, xlim, ylim, list(zip(xs, ys)) + [(p.madds, p.top1_dist) for p in dist],
                    log)
    for kind in ('HC', 'searched', 'human'):
        sel = [p for p in points if p.kind == kind]
        if not sel:
            continue
        ax.scatter([p.madds for p in sel], [p.top1 for p in sel], label=_KIND_LABEL[kind],
                   **_STYLE[kind])
        for p in sel:
            place(p.madds, p.top1, p.label, 6.5, color=_STYLE[kind]['color'])
    # the HC frontier at 224 px (the 320 px row is another resolution, not on the line)
    hc = sorted((p for p in points if p.kind == 'HC' and p.input_size == 224),
                key=lambda p: p.madds)
    if hc:
        ax.plot([p.madds for p in hc], [p.top1 for p in hc], color='tab:red', lw=1, zorder=2)
    if dist:
        ax.scatter([p.madds for p in dist], [p.top1_dist for p in dist], facecolors='none',
                   edgecolors='tab:red', marker='*', s=140, zorder=4,
                   label='HC, distributed training (*)')
    if runs:
        ax.scatter([r.madds for r in runs], shown, color='black', marker='D', s=50, zorder=5,
                   label='your runs (best val top-1, measured MAdds)')
        for r, y in zip(runs, shown):
            off = '' if y == r.top1 else ': %.2f%%, off the scale' % r.top1
            place(r.madds, y, r.label + off, 7, color='black')
    ax.set_xlabel('MAdds (M)' + (', log scale' if log else ''))
    ax.set_ylabel('ImageNet top-1 (%)')
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which='both' if log else 'major')


def draw(png_path, points, runs=()):
    """Draw the two panels to ``png_path`` (written atomically)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    runs = list(runs)
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.2))
    fig.subplots_adjust(left=0.05, right=0.985, bottom=0.16, top=0.88, wspace=0.13)
    small = [p for p in points if p.table == 2 and p.madds < FIGURE2_MAX_MADDS]
    _panel(axes[0], small, [r for r in runs if r.madds < FIGURE2_MAX_MADDS],
           '(a) Figure 2: Table 2, HC on MobileNet v3 vs human-designed and NAS networks '
           '(MAdds < %d M)' % FIGURE2_MAX_MADDS)
    _panel(axes[1], [p for p in points if p.table == 4], runs,
           '(b) Table 4: HC on EfficientNet-B0 vs larger networks', log=True)
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc='lower center', ncol=len(handles),
               fontsize=8, frameon=False)
    fig.suptitle('Hybrid Composition with IdleBlock: ImageNet top-1 against MAdds '
                 '(the papers\' quoted figures%s)' % (' and your runs' if runs else ''),
                 fontsize=11)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=110, format='png', metadata={'Software': None})
    plt.close(fig)


def _f(value, digits=1):
    return '–' if value is None else '%.*f' % (digits, value)


def render_markdown(points, runs=(), png_name='figure2.png'):
    """The Markdown table of every point drawn (paper points, then runs)."""
    out = ['# Figure 2: ImageNet top-1 against MAdds', '',
           'Generated by `hcnet figure2`; do not edit by hand.', '',
           '![Figure 2](%s)' % png_name, '',
           'Paper points are the quoted figures of the HC paper\'s Tables 2 and 4 '
           '(`hcnet.paper.reference`, `hcnet.paper.baselines`); panel (a) is the paper\'s '
           'Figure 2 (Table 2, MAdds < %d M), panel (b) Table 4.' % FIGURE2_MAX_MADDS, '',
           '| table | network | kind | input | MAdds (M) | top-1 (%) | top-1 distributed (%) |',
           '|---|---|---|---|---|---|---|']
    for p in sorted(points, key=lambda p: (p.table, p.madds)):
        name = p.label + (' (`%s`)' % p.model if p.kind == 'HC' and p.model else '')
        out.append('| %d | %s | %s | %d | %s | %s | %s |' % (
            p.table, name, p.kind, p.input_size, _f(p.madds, 0 if p.madds >= 1000 else 1),
            _f(p.top1, 2), _f(p.top1_dist, 2)))
    if runs:
        out += ['', '## Runs', '',
                'Best `val_top1` of `metrics.jsonl`; MAdds measured with `hcnet.count` on '
                'the network of `config.yaml` at its `data.input_size` (drawn: the paper '
                'convention for hybrid-composition networks, the standard one otherwise).', '',
                '| run directory | model | dataset | classes | input | MAdds drawn (M) '
                '| convention | MAdds standard (M) | params standard (M) | best top-1 (%) '
                '| at epoch | epochs |',
                '|' + '---|' * 12]
        for r in runs:
            out.append('| `%s` | `%s` | %s | %d | %d | %.2f | %s | %.2f | %.3f | %.2f | %d | %d |'
                       % (r.run_dir, r.model, r.dataset, r.classes, r.input_size, r.madds,
                          r.convention, r.std_madds, r.std_params, r.top1, r.best_epoch,
                          r.epochs))
        other = [r.run_dir for r in runs if not r.imagenet1k]
        if other:
            out += ['', 'Not trained on ImageNet-1k (`imagenet_rec`, 1000 classes): %s; their '
                        'top-1 is not comparable with the paper\'s points.'
                    % ', '.join('`%s`' % d for d in other)]
    return '\n'.join(out) + '\n'


def figure2(out_dir, run_dirs=(), stem='figure2'):
    """Read the runs, draw ``OUT/<stem>.png`` and write ``OUT/<stem>.md``; returns
    (png path, md path, paper points, runs)."""
    runs: List[RunPoint] = [read_run(d) for d in run_dirs]   # every run checked before drawing
    points = paper_points()
    os.makedirs(out_dir, exist_ok=True)
    png, md = os.path.join(out_dir, stem + '.png'), os.path.join(out_dir, stem + '.md')
    draw(png, points, runs)
    write_text(md, render_markdown(points, runs, os.path.basename(png)))
    return png, md, points, runs
