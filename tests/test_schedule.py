"""Learning-rate schedule: warmup then decay, a pure function of the update count."""
import math

import pytest

from hcnet.train.schedule import WarmupSchedule


def test_linear_warmup_then_cosine_to_final():
    s = WarmupSchedule(1.0, steps_per_epoch=10, epochs=10, warmup_epochs=2, warmup_lr=0.0,
                       mode='cosine', final_lr=0.1)
    assert s(0) == 0.0
    assert s(10) == pytest.approx(0.5)                   # halfway through warmup
    assert s(20) == pytest.approx(1.0)                   # warmup done
    assert s(60) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 0.5)) / 2)
    assert s(100) == pytest.approx(0.1)
    values = [s(t) for t in range(20, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_step_and_linear_and_constant():
    step = WarmupSchedule(1.0, 10, 10, mode='step', step_epochs=(3, 6), step_factor=0.1)
    assert (step(29), step(30), step(60)) == (1.0, pytest.approx(0.1), pytest.approx(0.01))
    lin = WarmupSchedule(1.0, 10, 10, mode='linear', final_lr=0.0)
    assert lin(50) == pytest.approx(0.5)
    assert WarmupSchedule(0.3, 10, 10, mode='constant')(77) == 0.3


def test_schedule_is_stateless():
    """A resumed run builds a fresh schedule from the same config and continues at the
    restored update count: it must give the values the original one gives from there on."""
    args = dict(base_lr=2.6, steps_per_epoch=100, epochs=5, warmup_epochs=1, warmup_lr=0.1,
                mode='cosine', final_lr=0.01)
    original = WarmupSchedule(**args)
    before = [original(t) for t in range(0, 250)]       # the run until it is killed
    after = [original(t) for t in range(250, 500)]
    resumed = WarmupSchedule(**args)                      # the resumed process's schedule
    assert [resumed(t) for t in range(250, 500)] == after
    assert [resumed(t) for t in range(0, 250)] == before


@pytest.mark.parametrize('mode,expected', [('linear', 0.25), ('power2', 0.0625), ('sqrt', 0.5)])
def test_warmup_shapes(mode, expected):
    s = WarmupSchedule(1.0, 10, 10, warmup_epochs=4, warmup_mode=mode)
    assert s(10) == pytest.approx(expected)
    assert s(40) == pytest.approx(1.0)
