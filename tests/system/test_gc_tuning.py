"""tune_gc: fewer collections for a message-heavy process, and the settings it replaced handed back."""

import gc

import pytest

from minos.networks.system import tune_gc


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_tune_gc_raises_the_young_threshold_keeps_the_multipliers_and_freezes_what_is_alive(restore_gc):
    gc.set_threshold(700, 10, 10)
    previous = tune_gc(20_000)
    assert previous == (700, 10, 10)
    assert gc.get_threshold() == (20_000, 10, 10)
    assert gc.get_freeze_count() > 0  # the modules and objects alive now left the collector's sight


def test_tune_gc_without_freeze_leaves_the_generations_alone(restore_gc):
    gc.unfreeze()
    tune_gc(30_000, freeze=False)
    assert gc.get_threshold()[0] == 30_000
    assert gc.get_freeze_count() == 0


def test_a_threshold_that_is_not_positive_is_refused(restore_gc):
    with pytest.raises(ValueError, match="young_threshold"):
        tune_gc(0)
