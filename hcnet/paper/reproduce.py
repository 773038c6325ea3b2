"""Reproduce the complexity columns of the paper's tables from the built networks."""
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from ..complexity import count
from ..model_zoo import get_model
from .reference import ANCHOR, PAPER_ROWS, TOLERANCE, PaperRow

__all__ = ['RowResult', 'measure', 'reproduce']


@lru_cache(maxsize=None)
def measure(model, input_size=224):
    """(network, Complexity) of zoo ``model`` at ``input_size``, cached per process."""
    net = get_model(model)
    return net, count(net, input_size)


@dataclass
class RowResult:
    row: PaperRow
    pattern: str
    num_mb: int
    num_idle: int
    raw_madds: float               # ours, paper convention
    raw_params: float
    madds: float                   # what is compared: raw, anchored on the None row, or
    params: float                  # standard (rows quoted in the standard convention)
    std_madds: float               # ours, standard convention
    std_params: float
    anchored: bool

    def ours(self, column):
        return getattr(self, column)

    def diff(self, column):
        """(absolute, relative) difference ours - paper, or None without a paper figure."""
        paper = getattr(self.row, column)
        if paper is None:
            return None
        delta = self.ours(column) - paper
        return delta, delta / paper

    def failures(self, tolerance=TOLERANCE):
        """Checked columns that drift more than ``tolerance`` from the paper."""
        return [c for c in self.row.check if abs(self.diff(c)[1]) > tolerance]


def _paper_numbers(model, input_size):
    net, cx = measure(model, input_size)
    madds, params = cx.paper_for(net.base)
    return net, cx, madds, params


def reproduce(rows=PAPER_ROWS):
    """Measure every row; MobileNetV3 rows are anchored on the paper's None figures, rows
    quoted in the standard convention are compared in it."""
    anchors = {}
    for base, model in ANCHOR.items():
        row = next(r for r in PAPER_ROWS if r.model == model and r.madds is not None)
        _, _, madds, params = _paper_numbers(model, row.input_size)
        anchors[base] = (row.madds - madds, row.params - params)
    results = []
    for row in rows:
        net, cx, madds, params = _paper_numbers(row.model, row.input_size)
        raw = madds, params
        std_madds, std_params = cx.standard()
        offset: Optional[tuple] = anchors.get(net.base.name) if net.base.paper_anchored else None
        if row.convention == 'standard':
            madds, params, offset = std_madds, std_params, None
        elif offset is not None:
            madds, params = madds + offset[0], params + offset[1]
        results.append(RowResult(row=row, pattern=str(net.pattern), num_mb=net.pattern.num_mb,
                                 num_idle=net.pattern.num_idle, raw_madds=raw[0],
                                 raw_params=raw[1], madds=madds, params=params,
                                 std_madds=std_madds, std_params=std_params,
                                 anchored=offset is not None))
    return results
