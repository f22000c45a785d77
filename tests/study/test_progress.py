"""A study while it runs: the board of running trials and the study, and the monitor that shows it
on a terminal or as plain lines at a bounded rate (the live entries themselves: tests/results/test_live.py)."""

from __future__ import annotations

import io
import threading
import time

import pytest
from helpers import entry
from rich.console import Console

from adsearch.results.live import save_live
from adsearch.results.rows import BASELINE, TrialRow
from adsearch.results.study_dir import StudyDir
from adsearch.study.progress import Board, Monitor

# --- the board ---------------------------------------------------------------------------------


def baseline_row(**result) -> TrialRow:
    return TrialRow.from_result(BASELINE, {"accuracy": 0.98, "params": 1_150_000, "wall_s": 250.0, **result},
                                role="baseline")


def board_of_a_search() -> Board:
    """Budget 8, two at once; trials 0 (200 s) and 1 (400 s) complete, 2 failed; 3 and 4 running."""
    board = Board(max_drop=0.01, size_tolerance=0.1)
    board.set_baseline(baseline_row())
    board.totals(8, concurrent=2)
    board.finished(TrialRow.from_result(0, {"accuracy": 0.975, "params": 115_000, "wall_s": 200.0}))
    board.finished(TrialRow.from_result(1, {"accuracy": 0.99, "params": 400_000, "wall_s": 400.0}))
    board.finished(TrialRow.from_result(2, {}, state="FAIL", error="RuntimeError: out of memory"))
    board.update([entry(3), entry(4, 2, started=1080.0, settings={"pruning.target_density": 0.9}, accuracy=0.5,
                                  loss=1.2, params=900_000, rounds=0)], now=1100.0)
    return board


def test_the_board_has_a_line_per_running_trial_and_one_for_the_study():
    # left: trials 3 and 4 end in 300 s and 180 s; the 3 trials not started take the mean 300 s each,
    # each in the slot that frees first: 180 -> 480 -> 780, 300 -> 600: the last ends in 780 s
    board = board_of_a_search()
    assert [t.line() for t in board.running] + [board.study_line()] == [
        "  running trial 3 (target_density=0.5, compress_at=[5, 10]): epoch 5/20, accuracy 91.2%, loss 0.312, "
        "params 115k, rounds 1; 1m 40s so far, about 5m 00s left",
        "  running trial 4 (target_density=0.9): epoch 2/20, accuracy 50.0%, loss 1.2, params 900k, rounds 0; "
        "20.0 s so far, about 3m 00s left",
        "  study: 3/8 trials done, 1 failed, 2 running; recommended so far: 97.5% at 10.0x fewer params; "
        "about 13m 00s left"]


def test_the_study_estimate_says_unknown_until_there_is_something_to_go_on():
    board = Board(max_drop=0.01, size_tolerance=0.1)
    board.totals(4, done_before=1, failed_before=1)
    assert not board.running and board.study_line() == (
        "  study: 1/4 trials done, 1 failed; recommended so far: none without a baseline; time left unknown")
    board.update([entry(BASELINE, 0, kind="baseline", settings={})], now=1100.0)
    assert board.study_line().endswith("baseline running; recommended so far: none until the baseline is done; "
                                       "time left unknown")
    # the baseline at epoch 5 of 20 (20 s each): 300 s to go, then 3 trials of its 400 s, two at a time
    board.totals(4, done_before=1, concurrent=2)
    board.update([entry(BASELINE, kind="baseline", settings={})], now=1100.0)
    assert board.left_s() == 300.0 + 800.0
    board.set_baseline(baseline_row())  # its entry, not yet removed, no longer counts as running
    board.update([entry(BASELINE, kind="baseline", settings={})], now=1100.0)
    assert board.running == [] and board.left_s() == 250.0 * 2  # then the baseline's 250 s a trial
    for number in (1, 2, 3):
        board.finished(TrialRow.from_result(number, {"accuracy": 0.9, "params": 1000, "wall_s": 100.0}))
    assert board.study_line() == "  study: 4/4 trials done; recommended so far: none within 1.0 pts of the " \
                                 "baseline yet"  # nothing left: no estimate


def test_the_board_leaves_out_a_finished_trial_whose_entry_is_still_there():
    board = board_of_a_search()
    board.finished(TrialRow.from_result(3, {"accuracy": 0.97, "params": 100_000, "wall_s": 300.0}))
    assert [t.label for t in board.running] == ["trial 4"]
    board.update([entry(3), entry(4, 2)], now=1101.0)
    assert [t.label for t in board.running] == ["trial 4"]


def test_the_board_as_a_rich_table():
    console = Console(file=io.StringIO(), width=160)
    console.print(board_of_a_search().renderable())
    text = console.file.getvalue()
    assert "trial 3   target_density=0.5, compress_at=[5, 10]    5/20      91.2%   0.312     115k" in text
    assert "study: 3/8 trials done, 1 failed, 2 running" in text


# --- the monitor -------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_only_for_a_changed_epoch_and_at_most_every_every_s(tmp_path):
    study, clock, said = StudyDir(tmp_path), Clock(), []
    save_live(study, entry(3, 1))
    monitor = Monitor(study, Board(max_drop=0.01, size_tolerance=0.1), terminal=False, every_s=1.0, poll_s=60, say=said.append,
                      clock=clock)
    with monitor:  # the thread sleeps 60 s between polls: this test polls by hand
        assert [s.split(":")[0] for s in said] == ["  running trial 3 (target_density=0.5, compress_at=[5, 10])",
                                                   "  study"]
        said.clear()
        clock.now = 0.2
        monitor.poll()
        assert said == []  # no epoch changed: a quiet study prints nothing
        save_live(study, entry(3, 2))
        clock.now = 0.5
        monitor.poll()
        assert said == []  # a block is due only 1 s after the last one
        clock.now = 1.0
        monitor.poll()
        assert len(said) == 2 and "epoch 2/20" in said[0]
        said.clear()
        save_live(study, entry(4, 1))
        clock.now = 2.5
        monitor.poll()
        assert len(said) == 2 and said[0].startswith("  running trial 4 ") and said[1].startswith("  study: ")
        said.clear()
    save_live(study, entry(4, 2))
    clock.now = 10.0
    monitor.poll()
    assert said == []  # nothing after exit


def test_plain_lines_from_the_thread_keep_to_the_rate(tmp_path):
    study, said = StudyDir(tmp_path), []
    start = time.monotonic()
    with Monitor(study, Board(max_drop=0.01, size_tolerance=0.1), terminal=False, every_s=0.5, poll_s=0.02, say=said.append):
        for epoch in range(1, 31):  # a new epoch every 50 ms for 1.5 s
            save_live(study, entry(3, epoch))
            time.sleep(0.05)
    took = time.monotonic() - start
    blocks = [s for s in said if s.startswith("  study: ")]
    assert 2 <= len(blocks) <= 1 + took // 0.5 and len(said) == 2 * len(blocks)  # at 0, 0.5, 1.0 and perhaps 1.5 s
    time.sleep(0.1)
    assert len(said) == 2 * len(blocks)


def test_the_terminal_display_shows_a_running_trial_and_the_lines_printed_above_it(tmp_path):
    study = StudyDir(tmp_path)
    save_live(study, entry(3, 5, started=time.time() - 100, now=time.time()))
    console = Console(file=io.StringIO(), force_terminal=True, width=160, highlight=False)
    with Monitor(study, Board(max_drop=0.01, size_tolerance=0.1), console=console, terminal=True, every_s=30, poll_s=0.05) as monitor:
        console.print("[3/8] trial 2: target_density=0.5: accuracy 97.5%", markup=False)
        time.sleep(0.15)
        assert monitor._thread.is_alive()
    text = console.file.getvalue()
    assert "trial 3" in text and "5/20" in text and "91.2%" in text
    assert "[3/8] trial 2: target_density=0.5: accuracy 97.5%" in text
    assert not monitor._thread.is_alive()


def test_the_monitor_stops_on_ctrl_c_and_its_thread_never_raises(tmp_path):
    class Broken:
        def read_live(self):
            raise OSError("the disk is gone")

    calls = []
    with pytest.raises(KeyboardInterrupt):
        with Monitor(Broken(), Board(max_drop=0.01, size_tolerance=0.1), terminal=False, every_s=0, poll_s=0.01,
                     say=calls.append) as monitor:
            time.sleep(0.1)
            assert monitor._thread.is_alive()  # every read failed, and it goes on
            raise KeyboardInterrupt
    assert not monitor._thread.is_alive() and calls == []

    def say(line):
        raise BrokenPipeError  # a log that has gone away

    study = StudyDir(tmp_path)
    save_live(study, entry())
    with Monitor(study, Board(max_drop=0.01, size_tolerance=0.1), terminal=False, every_s=0, poll_s=0.01, say=say) as monitor:
        save_live(study, entry(3, 6))
        time.sleep(0.05)
        assert monitor._thread.is_alive()
    assert threading.active_count() >= 1 and not monitor._thread.is_alive()
