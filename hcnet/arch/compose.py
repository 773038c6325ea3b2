"""Hybrid composition: base spec + policy -> per-stage pattern -> network spec.

A *pattern* is the readable middle step, one token per block, stages separated
by ``|``::

    M | M I I | M M M | M M I I I I | M I I | M I I M     (hc_m10_i10)

Tokens: ``M`` MBBlock; ``I`` IdleBlock on the network's default side;
``L`` / ``R`` an L- / R-IdleBlock; ``S`` an Inverted Shuffle Block (ISB).

Token *j* of stage *s* takes its kernel, expanded width, SE and activation from
row *j* of the base stage, and tokens past the base depth repeat the stage's last
row at stride 1 (EfficientNet's depth scaling). An idle token on the first row of
a stage that strides or changes width becomes the IdleBlock reduction variant.

Policies (section 3 of the paper, plus the variants of Tables 2 and 5-7):

``none``        all MBBlocks (upper bound).
``maximum``     every stride-1, width-preserving block becomes idle (lower bound).
``adjacent``    without ``budget``: the base spec's Adjacent placement, the one the
                paper's numbers imply (paper-tables.md). With ``budget=n``: the
                paper's greedy rule -- visit stride-1 width-preserving blocks whose
                input block is an MBBlock, from the last stage back to the first
                (in order within a stage), replacing each until ``n`` are idle.
``adjacent+1``  ``adjacent``, each IdleBlock doubled (one MBBlock -> two IdleBlocks).
``deeper``      all MBBlocks plus ``count`` new blocks of kind ``insert`` (``I`` or
                ``M``) after each Adjacent position (``at='adjacent'``) or after each
                block of ``stages`` (``at='all'``, default ``base.deep_stages``).
``all-idle``    every block but the network's first is idle (the M=1 rows).

``sides``: ``None`` keeps ``I`` tokens (network default side), ``'L'``/``'R'`` fixes
one side, ``'LR'`` alternates L, R, L, ... within each run of consecutive idle
blocks. ``block='isb'`` turns idle tokens into ISBs.
"""
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from .specs import get_base_spec

__all__ = ['Pattern', 'BlockSpec', 'POLICIES', 'compose', 'resolve', 'IDLE_TOKENS']

IDLE_TOKENS = ('I', 'L', 'R', 'S')
TOKENS = ('M',) + IDLE_TOKENS
POLICIES = ('none', 'maximum', 'adjacent', 'adjacent+1', 'deeper', 'all-idle')


@dataclass(frozen=True)
class Pattern:
    """Per-stage block tokens; ``str(pattern)`` is the readable form."""
    stages: Tuple[Tuple[str, ...], ...]

    @classmethod
    def parse(cls, text):
        """Parse ``'M | M I I | ...'`` (case-insensitive; spaces optional: ``'M|MII'``)."""
        stages = []
        for part in text.split('|'):
            tokens = tuple(re.sub(r'\s+', '', part).upper())
            bad = [t for t in tokens if t not in TOKENS]
            if bad or not tokens:
                raise ValueError('bad pattern %r: each stage needs tokens from %s'
                                 % (text, '/'.join(TOKENS)))
            stages.append(tokens)
        return cls(tuple(stages))

    def __str__(self):
        return ' | '.join(' '.join(stage) for stage in self.stages)

    @property
    def num_mb(self):
        return sum(t == 'M' for stage in self.stages for t in stage)

    @property
    def num_idle(self):
        return sum(t in IDLE_TOKENS for stage in self.stages for t in stage)


@dataclass(frozen=True)
class BlockSpec:
    """One resolved block of a network."""
    name: str            # 'stage3_block2' (1-based)
    kind: str            # 'M' (MBBlock) or 'I' (IdleBlock, reduction variant if it strides/widens)
    in_channels: int
    exp_channels: int
    out_channels: int
    kernel: int
    stride: int
    se_channels: int     # 0: no SE
    act: str
    side: Optional[str] = None   # 'L' / 'R' for IdleBlocks
    shuffle: bool = False        # ISB
    drop_connect: float = 0.0


def _base_tokens(base):
    return [['M'] * len(rows) for rows in base.stages]


def _positions(base):
    return [(s, b) for s, rows in enumerate(base.stages) for b in range(len(rows))]


def _greedy_adjacent(base, budget):
    tokens = _base_tokens(base)
    placed = 0
    for s in reversed(range(len(base.stages))):
        for b in range(len(base.stages[s])):
            if placed >= budget:
                return tokens
            if (s, b) == (0, 0) or not base.replaceable(s, b):
                continue  # the stem is no MBBlock; reduction blocks stay
            prev = tokens[s][b - 1] if b else tokens[s - 1][-1]
            if prev == 'M':
                tokens[s][b] = 'I'
                placed += 1
    return tokens


def _adjacent(base, budget):
    if budget is None:
        tokens = _base_tokens(base)
        for s, b in base.adjacent:
            tokens[s][b] = 'I'
        return tokens
    return _greedy_adjacent(base, int(budget))


def _apply_sides(tokens, sides, block):
    if sides not in (None, 'L', 'R', 'LR'):
        raise ValueError("sides must be None, 'L', 'R' or 'LR', got %r" % (sides,))
    if block == 'isb':
        if sides is not None:
            raise ValueError('ISB tokens (S) take the network side (idle_side); '
                             'sides=%r is for IdleBlocks' % (sides,))
        return [['S' if t in IDLE_TOKENS else t for t in stage] for stage in tokens]
    if block != 'idle':
        raise ValueError("block must be 'idle' or 'isb', got %r" % (block,))
    if sides is None:
        return tokens
    if sides in ('L', 'R'):
        return [[sides if t in IDLE_TOKENS else t for t in stage] for stage in tokens]
    out, run = [], 0
    for stage in tokens:
        row = []
        for t in stage:
            if t in IDLE_TOKENS:
                row.append('LR'[run % 2])
                run += 1
            else:
                row.append(t)
                run = 0
        out.append(row)
    return out


def compose(base, policy='none', *, budget=None, insert='I', count=1, at='adjacent',
            stages=None, sides=None, block='idle', pattern=None):
    """Resolve a composition policy on ``base`` into a :class:`Pattern`.

    ``pattern`` (a string or Pattern) overrides the policy. See the module
    docstring for the policies and their arguments.
    """
    base = get_base_spec(base)
    if pattern is not None:
        pat = pattern if isinstance(pattern, Pattern) else Pattern.parse(pattern)
        if len(pat.stages) != len(base.stages):
            raise ValueError('pattern %r has %d stages, %s has %d'
                             % (str(pat), len(pat.stages), base.title, len(base.stages)))
        tokens = [list(stage) for stage in pat.stages]
    elif policy == 'none':
        tokens = _base_tokens(base)
    elif policy == 'maximum':
        tokens = [['I' if base.replaceable(s, b) else 'M' for b in range(len(rows))]
                  for s, rows in enumerate(base.stages)]
    elif policy == 'adjacent':
        tokens = _adjacent(base, budget)
    elif policy == 'adjacent+1':
        tokens = [[u for t in stage for u in ((t, t) if t == 'I' else (t,))]
                  for stage in _adjacent(base, budget)]
    elif policy == 'deeper':
        if insert not in ('M', 'I') or count < 1:
            raise ValueError("deeper needs insert 'M' or 'I' and count >= 1")
        if at == 'adjacent':
            adj = _adjacent(base, budget)
            where = {(s, b) for s, b in _positions(base) if adj[s][b] == 'I'}
        elif at == 'all':
            deep = base.deep_stages if stages is None else tuple(stages)
            where = {(s, b) for s, b in _positions(base) if s in deep}
        else:
            raise ValueError("deeper: at must be 'adjacent' or 'all', got %r" % (at,))
        tokens = [[u for b in range(len(rows))
                   for u in ['M'] + ([insert] * count if (s, b) in where else [])]
                  for s, rows in enumerate(base.stages)]
    elif policy == 'all-idle':
        tokens = [['M' if (s, b) == (0, 0) else 'I' for b in range(len(rows))]
                  for s, rows in enumerate(base.stages)]
    else:
        raise ValueError('unknown policy %r; choose one of %s' % (policy, ', '.join(POLICIES)))
    return Pattern(tuple(tuple(stage) for stage in _apply_sides(tokens, sides, block)))


def resolve(base, pattern, *, idle_side='R', drop_connect=None):
    """Turn a pattern into the list of :class:`BlockSpec` the network is built from.

    ``drop_connect`` (default: the base spec's) grows linearly from 0 to that
    rate over the blocks, as in EfficientNet.
    """
    base = get_base_spec(base)
    if idle_side not in ('L', 'R'):
        raise ValueError("idle_side must be 'L' or 'R', got %r" % (idle_side,))
    if len(pattern.stages) != len(base.stages):
        raise ValueError('pattern %r has %d stages, %s has %d'
                         % (str(pattern), len(pattern.stages), base.title, len(base.stages)))
    rate = base.drop_connect if drop_connect is None else drop_connect
    total = sum(len(stage) for stage in pattern.stages)
    blocks, in_ch, index = [], base.stem_channels, 0
    for s, (rows, stage) in enumerate(zip(base.stages, pattern.stages)):
        for b, token in enumerate(stage):
            row = rows[min(b, len(rows) - 1)]
            stride = row.stride if b == 0 else 1
            exp = row.expanded(in_ch)  # repeats: in_ch == row.out; absolute widths stay
            kind = 'M' if token == 'M' else 'I'
            rule = base.se_mb if kind == 'M' else base.se_idle
            se = rule.width(in_ch, exp) if row.se else 0
            blocks.append(BlockSpec(
                name='stage%d_block%d' % (s + 1, b + 1), kind=kind, in_channels=in_ch,
                exp_channels=exp, out_channels=row.out, kernel=row.kernel, stride=stride,
                se_channels=se, act=row.act,
                side=(idle_side if token in ('I', 'S') else token) if kind == 'I' else None,
                shuffle=token == 'S', drop_connect=rate * index / total))
            in_ch = row.out
            index += 1
    return blocks
