"""Every clock gillab reads: task clocks, start-signal runs, calibration, the noise
guard, the GIL probe, footprint and dispatch, and the executors that run the tasks.

Imports nothing at import time: subinterpreters and the gevent child import modules
of this package before anything else (psutil cannot load in a subinterpreter, and
gevent must patch before threading is imported)."""
