"""Progress moves with the cells: each cell is counted when it finishes, not in bursts."""
from __future__ import annotations

import io

from gillab.compare.engine import Plan, Progress, run_compare
from gillab.compare.progress import LineProgress


class Recorder(Progress):
    def __init__(self):
        self.events = []

    def start(self, total_cells):
        self.events.append(("start", total_cells))

    def step(self, label):
        self.events.append(("step", label))

    def cell_done(self, cell):
        self.events.append(("done", f"{cell.executor} x{cell.workers}"))


PLAN = Plan(kernels=("sleep",), executors=("serial", "threads", "thread_pool"), workers=(1, 2),
            repeat=1, max_repeat=1, target_s=0.01, max_tries=1)


def test_each_cell_is_counted_as_soon_as_it_is_measured():
    recorder = Recorder()
    run = run_compare(PLAN, recorder)
    cell_steps = [i for i, (kind, label) in enumerate(recorder.events)
                  if kind == "step" and " on " in label]
    dones = [i for i, (kind, _) in enumerate(recorder.events) if kind == "done"]
    assert recorder.events[0] == ("start", len(run.cells)) and len(dones) == len(run.cells) == 5
    # Between one cell's step and the next cell's, that cell is done: no burst at the end.
    for this, following in zip(cell_steps, cell_steps[1:] + [len(recorder.events)]):
        assert sum(this < d < following for d in dones) == 1, recorder.events


def test_the_counter_on_a_pipe_climbs_one_cell_at_a_time():
    out = io.StringIO()
    run_compare(PLAN, LineProgress(out))
    counters = [line.split("]")[0] + "]" for line in out.getvalue().splitlines()
                if " on " in line]
    assert counters == ["[0/5]", "[1/5]", "[2/5]", "[3/5]", "[4/5]"]
