import math

import pytest

from lightgcn_pyg.training.early_stopping import EarlyStopping


def run(stopper, values):
    """Feeds values until the stopper says stop; returns (improved flags, stop index)."""
    flags = []
    for index, value in enumerate(values):
        flags.append(stopper.step(value))
        if stopper.should_stop:
            return flags, index
    return flags, None


def test_max_mode_stops_after_patience_bad_evaluations():
    stopper = EarlyStopping(patience=2, mode="max")
    flags, stop = run(stopper, [0.1, 0.2, 0.15, 0.2, 0.19, 0.3, 0.5])
    assert flags == [True, True, False, False, False]
    assert stop == 4
    assert stopper.best == 0.2 and stopper.best_step == 1 and stopper.num_bad == 3


def test_improvement_resets_counter():
    stopper = EarlyStopping(patience=2)
    flags, stop = run(stopper, [0.1, 0.05, 0.05, 0.2, 0.1, 0.1, 0.1])
    assert flags == [True, False, False, True, False, False, False]
    assert stop == 6
    assert stopper.best == 0.2 and stopper.best_step == 3


def test_min_mode():
    stopper = EarlyStopping(patience=1, mode="min")
    flags, stop = run(stopper, [5.0, 4.0, 4.5, 3.0, 3.0, 3.5])
    assert flags == [True, True, False, True, False, False]
    assert stop == 5
    assert stopper.best == 3.0 and stopper.best_step == 3


def test_patience_zero_stops_at_first_non_improvement():
    stopper = EarlyStopping(patience=0)
    flags, stop = run(stopper, [1.0, 2.0, 2.0, 3.0])
    assert flags == [True, True, False]
    assert stop == 2


def test_min_delta():
    stopper = EarlyStopping(patience=1, mode="max", min_delta=0.1)
    flags, stop = run(stopper, [1.0, 1.05, 1.2, 1.25, 1.28])
    # 1.05, 1.25 and 1.28 are within min_delta of the best so far.
    assert flags == [True, False, True, False, False]
    assert stop == 4
    assert stopper.best == 1.2


def test_nan_never_improves():
    stopper = EarlyStopping(patience=1, mode="min")
    assert stopper.step(float("nan")) is False
    assert stopper.best == math.inf and stopper.best_step == -1
    assert stopper.step(2.0) is True
    assert stopper.step(float("nan")) is False
    assert stopper.should_stop is False
    assert stopper.step(float("nan")) is False
    assert stopper.should_stop is True
    assert stopper.best == 2.0 and stopper.best_step == 1


def test_seed_notebook_bug_stopper_does_stop():
    # A plateau must stop training (the seed notebook's helper never did).
    stopper = EarlyStopping(patience=3)
    values = [0.1, 0.12, 0.13] + [0.13] * 100
    _, stop = run(stopper, values)
    assert stop == 6


def test_state_dict_round_trip_resumes_exactly():
    values = [0.3, 0.4, 0.35, 0.39, 0.41, 0.2, 0.2, 0.2]
    reference = EarlyStopping(patience=2)
    expected = run(reference, values)

    first = EarlyStopping(patience=2)
    head = [first.step(v) for v in values[:4]]
    state = first.state_dict()
    assert state == {
        "patience": 2,
        "mode": "max",
        "min_delta": 0.0,
        "best": 0.4,
        "best_step": 1,
        "num_bad": 2,
        "num_steps": 4,
    }
    assert all(type(v) in (int, float, str) for v in state.values())
    resumed = EarlyStopping(patience=2)
    resumed.load_state_dict(state)
    tail_flags, tail_stop = run(resumed, values[4:])
    assert head + tail_flags == expected[0]
    assert tail_stop + 4 == expected[1]
    assert resumed.state_dict() == reference.state_dict()


def test_load_state_dict_validation():
    stopper = EarlyStopping(patience=1, mode="min")
    with pytest.raises(ValueError, match="mode 'max', expected 'min'"):
        stopper.load_state_dict(EarlyStopping(patience=1, mode="max").state_dict())
    with pytest.raises(ValueError, match="misses the keys \\['num_bad'\\]"):
        state = stopper.state_dict()
        del state["num_bad"]
        stopper.load_state_dict(state)


def test_reset_and_repr():
    stopper = EarlyStopping(patience=0)
    stopper.step(1.0)
    stopper.step(0.5)
    assert stopper.should_stop
    stopper.reset()
    assert not stopper.should_stop and stopper.best == -math.inf and stopper.num_steps == 0
    assert repr(stopper) == "EarlyStopping(patience=0, mode='max', min_delta=0.0)"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(patience=-1), "'patience' must be a non-negative integer.*got -1"),
        (dict(patience=1.5), "'patience'.*got 1.5"),
        (dict(patience=2, mode="best"), "'mode' must be one of.*got 'best'"),
        (dict(patience=2, min_delta=-0.1), "'min_delta'.*got -0.1"),
        (dict(patience=2, min_delta=float("nan")), "'min_delta'.*got nan"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)
