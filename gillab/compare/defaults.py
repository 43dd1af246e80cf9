"""How long one task of compare's takes serially, by default: a leaf, so the CLI's parser
can show it without importing the engine (and the compiled extension behind it).

0.2 s (0.1 s with --quick): long against the 5 ms switch interval and a clock tick
(40 turns, 50 ticks), short enough that the default matrix of 9 executors, each cell
paired with serial runs of its own, stays under 2 minutes on 2 cores (113 s measured);
it was 0.3 s before the pairing, which costs one serial task per timed run of a cell.
--quick keeps 0.1 s: at 0.06 s, bigint's short tasks swung up to 25% between three
runs and one cell read 1.2x on one worker.
"""

DEFAULT_TARGET_S = 0.2
QUICK_TARGET_S = 0.1
