"""The commit point never passes a record that has not finished."""

import pytest

from trigger_daemon.core.offsets import PartitionProgress


def test_nothing_is_committable_before_the_first_record_finishes() -> None:
    progress = PartitionProgress()
    progress.start(5)
    assert progress.commit_point is None


def test_out_of_order_finishes_commit_only_the_finished_prefix() -> None:
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.start(offset)
    progress.finish(12)
    progress.finish(11)
    assert progress.commit_point is None  # 10 is still running
    progress.finish(10)
    assert progress.commit_point == 13
    assert progress.in_flight == 1
    progress.finish(13)
    assert progress.commit_point == 14
    assert progress.in_flight == 0


def test_gaps_in_offsets_are_fine() -> None:
    progress = PartitionProgress()
    progress.start(3)
    progress.start(9)  # compacted topics and transactions leave gaps
    progress.finish(9)
    progress.finish(3)
    assert progress.commit_point == 10


def test_offsets_must_start_in_order() -> None:
    progress = PartitionProgress()
    progress.start(4)
    with pytest.raises(ValueError, match="out of order"):
        progress.start(4)


def test_a_record_finished_as_it_starts_moves_the_point_only_when_nothing_runs() -> None:
    progress = PartitionProgress()
    progress.start_finished(0)
    assert progress.commit_point == 1
    progress.start(1)
    progress.start_finished(2)
    assert progress.commit_point == 1  # record 1 still runs
    progress.finish(1)
    assert progress.commit_point == 3
    assert progress.in_flight == 0
