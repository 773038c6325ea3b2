"""Composition: Pattern parsing, the policies of compose(), and resolve()."""
import dataclasses

import pytest

from hcnet.arch import BASE_SPECS, Pattern, compose, get_base_spec, make_divisible, resolve

MB, EFF = 'mobilenetv3_large', 'efficientnet_b0'
M10_I10 = 'M | M I I | M M M | M M I I I I | M I I | M I I M'


def _toks(pattern):
    return [list(stage) for stage in pattern.stages]


# --------------------------------------------------------------------------- Pattern
def test_parse_round_trip():
    pat = Pattern.parse(M10_I10)
    assert str(pat) == M10_I10
    assert Pattern.parse(str(pat)) == pat
    assert pat.stages[1] == ('M', 'I', 'I')
    assert len(pat.stages) == 6
    assert (pat.num_mb, pat.num_idle) == (10, 10)


def test_parse_compact_and_lowercase():
    assert Pattern.parse('m|mii|l r s') == Pattern((('M',), ('M', 'I', 'I'), ('L', 'R', 'S')))


@pytest.mark.parametrize('text', ['M | X', 'M | M I X', 'M || M', 'M | ', '', 'M | M-I'])
def test_parse_errors(text):
    with pytest.raises(ValueError):
        Pattern.parse(text)


@pytest.mark.parametrize('base,text', [
    (MB, 'M | M M | M M M'),                                        # 3 of 6 stages
    (MB, 'M | M M | M M M | M M M M | M M | M M M | M'),            # 7 of 6
    (EFF, M10_I10),                                                 # 6 of 7
])
def test_wrong_stage_count(base, text):
    with pytest.raises(ValueError):
        compose(base, pattern=text)


# --------------------------------------------------------------------------- policies
def test_none_is_all_mb():
    for name, base in BASE_SPECS.items():
        pat = compose(name)
        assert [len(s) for s in pat.stages] == [len(rows) for rows in base.stages]
        assert pat.num_idle == 0


def test_maximum_mobilenetv3():
    assert str(compose(MB, 'maximum')) == 'I | M I | M I I | M I I I | M I | M I I'


def test_maximum_efficientnet():
    assert str(compose(EFF, 'maximum')) == 'M | M I | M I | M I I | M I I | M I I I | M'


def _is_replaceable_independent(base, s, b):
    rows = base.stages[s]
    in_ch = (base.stem_channels if s == 0 else base.stages[s - 1][-1].out) if b == 0 \
        else rows[b - 1].out
    return rows[b].stride == 1 and in_ch == rows[b].out


def _greedy_reference(base, budget):
    """The paper's greedy Adjacent rule, written out: last stage first, in order within."""
    flat = [(s, b) for s in range(len(base.stages)) for b in range(len(base.stages[s]))]
    kinds = {pos: 'M' for pos in flat}
    order = [(s, b) for s in reversed(range(len(base.stages)))
             for b in range(len(base.stages[s]))]
    placed = 0
    for s, b in order:
        if placed == budget:
            break
        if (s, b) == (0, 0) or not _is_replaceable_independent(base, s, b):
            continue
        prev = flat[flat.index((s, b)) - 1]
        if kinds[prev] == 'M':
            kinds[(s, b)] = 'I'
            placed += 1
    return [[kinds[(s, b)] for b in range(len(base.stages[s]))]
            for s in range(len(base.stages))]


def test_greedy_adjacent_budget5_reproduces_efficientnet_paper_placement():
    greedy = compose(EFF, 'adjacent', budget=5)
    assert greedy == compose(EFF, 'adjacent')
    # paper-tables.md: 24[M M] 40[M I] 80[M I M] 112[M I M] 192[M I M I]
    assert str(greedy) == 'M | M M | M I | M I M | M I M | M I M I | M'


@pytest.mark.parametrize('base', [MB, EFF])
@pytest.mark.parametrize('budget', [0, 1, 3, 5])
def test_greedy_adjacent_matches_reference(base, budget):
    pat = compose(base, 'adjacent', budget=budget)
    assert _toks(pat) == _greedy_reference(get_base_spec(base), budget)
    assert pat.num_idle == budget


@pytest.mark.parametrize('base', [MB, EFF])
def test_adjacent_places_spec_positions(base):
    spec = get_base_spec(base)
    pat = compose(base, 'adjacent')
    idle = {(s, b) for s, st in enumerate(pat.stages) for b, t in enumerate(st) if t == 'I'}
    assert idle == set(spec.adjacent)
    assert pat.num_idle == 5


@pytest.mark.parametrize('base', [MB, EFF])
def test_greedy_adjacent_never_puts_two_idle_blocks_in_a_row(base):
    flat = [t for st in compose(base, 'adjacent', budget=100).stages for t in st]
    assert 'I' in flat
    assert all(not (a == 'I' and b == 'I') for a, b in zip(flat, flat[1:]))


@pytest.mark.parametrize('base', [MB, EFF])
def test_adjacent_plus_one_doubles_every_idle(base):
    adj, adj1 = compose(base, 'adjacent'), compose(base, 'adjacent+1')
    for a, b in zip(adj.stages, adj1.stages):
        expect = []
        for t in a:
            expect += ['I', 'I'] if t == 'I' else [t]
        assert list(b) == expect
    assert adj1.num_idle == 2 * adj.num_idle and adj1.num_mb == adj.num_mb


def _lr_reference(tokens):
    """Alternate L, R, L, ... over each run of consecutive idle tokens (runs reset at M)."""
    out, run = [], 0
    for stage in tokens:
        row = []
        for t in stage:
            if t == 'M':
                run = 0
                row.append('M')
            else:
                row.append('L' if run % 2 == 0 else 'R')
                run += 1
        out.append(row)
    return out


@pytest.mark.parametrize('base,policy,kw', [
    (MB, 'adjacent+1', {}), (MB, 'maximum', {}), (MB, 'all-idle', {}),
    (MB, 'deeper', dict(insert='I', count=4)), (EFF, 'adjacent+1', {}),
    (EFF, 'deeper', dict(insert='I', count=2, at='all'))])
def test_sides_lr_alternates_within_runs(base, policy, kw):
    plain = compose(base, policy, **kw)
    lr = compose(base, policy, sides='LR', **kw)
    assert _toks(lr) == _lr_reference(_toks(plain))
    flat = [t for st in lr.stages for t in st]
    # every run starts with L and never repeats a side
    for i, t in enumerate(flat):
        if t in 'LR':
            prev = flat[i - 1] if i else 'M'
            assert (t == 'L') if prev == 'M' else (t != prev)


def test_sides_lr_concrete():
    assert str(compose(MB, 'adjacent+1', sides='LR')) == \
        'M | M L R | M M M | M M L R L R | M L R | M L R M'


@pytest.mark.parametrize('side', ['L', 'R'])
def test_sides_single(side):
    pat = compose(MB, 'adjacent+1', sides=side)
    assert str(pat) == M10_I10.replace('I', side)


def test_block_isb_gives_s_tokens():
    pat = compose(MB, 'adjacent+1', block='isb')
    assert str(pat) == M10_I10.replace('I', 'S')
    with pytest.raises(ValueError):
        compose(MB, 'adjacent', block='isb', sides='LR')
    with pytest.raises(ValueError):
        compose(MB, 'adjacent', block='conv')


def test_explicit_pattern_overrides_policy():
    pat = compose(MB, 'maximum', pattern=M10_I10)
    assert str(pat) == M10_I10
    assert compose(MB, 'none', pattern=Pattern.parse(M10_I10)) == Pattern.parse(M10_I10)


@pytest.mark.parametrize('policy', ['bogus', 'Adjacent', 'max'])
def test_unknown_policy(policy):
    with pytest.raises(ValueError):
        compose(MB, policy)


def test_unknown_base():
    with pytest.raises(ValueError):
        compose('resnet50')


def test_all_idle_keeps_only_first_block():
    for base in (MB, EFF):
        pat = compose(base, 'all-idle')
        flat = [t for st in pat.stages for t in st]
        assert flat[0] == 'M' and set(flat[1:]) == {'I'}


def test_deeper_inserts_after_adjacent_positions():
    spec = get_base_spec(MB)
    pat = compose(MB, 'deeper', insert='I', count=2)
    expect = []
    for s, rows in enumerate(spec.stages):
        stage = []
        for b in range(len(rows)):
            stage += ['M'] + (['I', 'I'] if (s, b) in spec.adjacent else [])
        expect.append(stage)
    assert _toks(pat) == expect
    pat_all = compose(EFF, 'deeper', insert='M', count=1, at='all')
    eff = get_base_spec(EFF)
    assert [len(st) for st in pat_all.stages] == [
        len(rows) * (2 if s in eff.deep_stages else 1) for s, rows in enumerate(eff.stages)]
    with pytest.raises(ValueError):
        compose(MB, 'deeper', insert='X')
    with pytest.raises(ValueError):
        compose(MB, 'deeper', at='somewhere')


# --------------------------------------------------------------------------- resolve
def test_resolve_names_are_one_based_stage_block():
    pat = Pattern.parse(M10_I10)
    blocks = resolve(MB, pat)
    expect = ['stage%d_block%d' % (s + 1, b + 1)
              for s, st in enumerate(pat.stages) for b in range(len(st))]
    assert [b.name for b in blocks] == expect
    assert blocks[0].name == 'stage1_block1'


def test_resolve_channels_chain():
    for base in (MB, EFF):
        spec = get_base_spec(base)
        blocks = resolve(base, compose(base, 'deeper', insert='I', count=2, at='all'))
        assert blocks[0].in_channels == spec.stem_channels
        for prev, cur in zip(blocks, blocks[1:]):
            assert cur.in_channels == prev.out_channels


def test_resolve_repeats_last_row_past_base_depth():
    # MobileNetV3 stage 2 = (k3, exp 64, 24, s2), (k3, exp 72, 24, s1): 4 tokens
    pat = Pattern.parse('M | M M M I | M M M | M M M M | M M | M M M')
    blocks = {b.name: b for b in resolve(MB, pat)}
    for name in ('stage2_block3', 'stage2_block4'):
        b = blocks[name]
        assert (b.in_channels, b.exp_channels, b.out_channels, b.kernel, b.stride) == \
            (24, 72, 24, 3, 1)
    assert blocks['stage2_block4'].kind == 'I'
    # EfficientNet stage 7 = one row (k3, x6, 320, s1); a repeat expands 320 * 6
    pat = Pattern.parse('M | M M | M M | M M M | M M M | M M M M | M M')
    b = {b.name: b for b in resolve(EFF, pat)}['stage7_block2']
    assert (b.in_channels, b.exp_channels, b.out_channels, b.kernel, b.stride) == \
        (320, 1920, 320, 3, 1)
    # EfficientNet stage 2 (s2 first row): repeated rows keep stride 1
    pat = Pattern.parse('M | M M M | M M | M M M | M M M | M M M M | M')
    b = {b.name: b for b in resolve(EFF, pat)}['stage2_block3']
    assert (b.in_channels, b.exp_channels, b.out_channels, b.stride) == (24, 144, 24, 1)


def test_resolve_repeat_of_a_strided_single_row_stage_has_stride_1():
    spec = get_base_spec(MB)
    stages = list(spec.stages)
    stages[1] = stages[1][:1]                       # stage 2 = (k3, exp 64, 24, s2) only
    custom = dataclasses.replace(spec, stages=tuple(stages))
    pat = Pattern.parse('M | M M I | M M M | M M M M | M M | M M M')
    blocks = {b.name: b for b in resolve(custom, pat)}
    assert (blocks['stage2_block1'].stride, blocks['stage2_block1'].in_channels) == (2, 16)
    for name in ('stage2_block2', 'stage2_block3'):
        b = blocks[name]
        assert (b.stride, b.in_channels, b.exp_channels, b.out_channels) == (1, 24, 64, 24)


def test_resolve_idle_on_strided_first_row_is_reduction():
    pat = Pattern.parse('M | I M | M M M | M M M M | I M | M M M')
    blocks = {b.name: b for b in resolve(MB, pat)}
    b = blocks['stage2_block1']
    assert (b.kind, b.stride, b.in_channels, b.out_channels, b.exp_channels) == \
        ('I', 2, 16, 24, 64)
    b = blocks['stage5_block1']                     # 80 -> 112 at stride 1
    assert (b.kind, b.stride, b.in_channels, b.out_channels) == ('I', 1, 80, 112)


def test_resolve_sides_and_shuffle():
    pat = Pattern.parse('M | I L | R S S | M M M M | M M | M M M')
    for idle_side in ('L', 'R'):
        blocks = resolve(MB, pat, idle_side=idle_side)
        kinds = [(b.kind, b.side, b.shuffle) for b in blocks[:6]]
        assert kinds == [('M', None, False), ('I', idle_side, False), ('I', 'L', False),
                         ('I', 'R', False), ('I', idle_side, True), ('I', idle_side, True)]
    with pytest.raises(ValueError):
        resolve(MB, pat, idle_side='X')


def test_resolve_drop_connect_linear():
    # EfficientNet (TF reference / timm): block i of n gets rate * i / n
    blocks = resolve(EFF, compose(EFF, 'none'))
    n = len(blocks)
    for i, b in enumerate(blocks):
        assert b.drop_connect == pytest.approx(0.2 * i / n)
    assert all(b.drop_connect == 0 for b in resolve(MB, compose(MB, 'none')))
    blocks = resolve(MB, compose(MB, 'none'), drop_connect=0.3)
    assert blocks[-1].drop_connect == pytest.approx(0.3 * (len(blocks) - 1) / len(blocks))


def test_resolve_se_widths():
    # torchvision MobileNetV3-Large: SE squeeze = make_divisible(exp / 4, 8)
    mb = {b.exp_channels: b.se_channels for b in resolve(MB, compose(MB, 'none'))
          if b.se_channels}
    assert mb == {72: 24, 120: 32, 480: 120, 672: 168, 960: 240}
    # EfficientNet: SE squeeze = int(block input width / 4), MB and Idle alike
    for b in resolve(EFF, compose(EFF, 'adjacent+1')):
        assert b.se_channels == max(1, b.in_channels // 4)
    # MobileNetV3 IdleBlocks: make_divisible(input width / 4, 8) where the row has SE
    spec = get_base_spec(MB)
    pat = compose(MB, 'adjacent+1')
    blocks = iter(resolve(MB, pat))
    n_idle_se = 0
    for s, stage in enumerate(pat.stages):
        for b, tok in enumerate(stage):
            blk = next(blocks)
            row = spec.stages[s][min(b, len(spec.stages[s]) - 1)]
            if blk.kind == 'I':
                expect = make_divisible(blk.in_channels / 4, 8) if row.se else 0
                assert blk.se_channels == expect
                n_idle_se += bool(expect)
    assert n_idle_se == 4            # the idle pairs of stages 112 and 160


@pytest.mark.parametrize('value,expect', [(18, 24), (30, 32), (120, 120), (168, 168),
                                          (240, 240), (10, 16), (3, 8)])
def test_make_divisible(value, expect):
    assert make_divisible(value, 8) == expect


def test_isb_rejects_a_side_and_bad_sides_are_refused():
    with pytest.raises(ValueError, match='idle_side'):
        compose('mobilenetv3_large', 'adjacent', block='isb', sides='L')
    with pytest.raises(ValueError, match='sides'):
        compose('mobilenetv3_large', 'adjacent', sides='Q')


def test_resolve_refuses_a_pattern_with_the_wrong_stage_count():
    with pytest.raises(ValueError, match='stages'):
        resolve('mobilenetv3_large', Pattern.parse('M | M'))
