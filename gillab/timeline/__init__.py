"""`gillab timeline`: see the GIL change hands, per thread, from /proc, without root.

The parent starts the program as its child, samples each thread's
``/proc/PID/task/TID/{schedstat,syscall}`` every 0.5 ms (``measure``, with the native
loop in ``gillab._sampler``), and rebuilds the samples into intervals afterwards
(``rebuild``). A futex wait inside ``_PyRuntime`` is a GIL wait (``gilmap``).
``record`` holds the result and its JSON; ``report`` draws it; ``cli`` is the command.
"""
