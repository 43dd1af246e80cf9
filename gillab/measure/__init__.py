"""The one measuring core: every clock gillab reads (beside the demos and the
timeline's /proc sampler), for every command. Task clocks and the noise guard
(clocks, noise), bounded calls (bounded), start-signal runs (runs), calibration,
the GIL probe, footprint and dispatch, the executors that run the tasks, and each
command's runs on top of them (loops: check; latency: convoy; stamps: the timeline's
lab child). docs/layers.md draws it.

Imports nothing at import time: subinterpreters and the gevent child import modules
of this package before anything else (psutil cannot load in a subinterpreter, and
gevent must patch before threading is imported)."""
