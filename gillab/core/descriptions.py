"""What each kernel shows, in one line: a leaf, so `show` needs no compiled extension."""

KERNEL_DESCRIPTIONS = {
    "py": "pure Python loop: bytecode holds the GIL, so threads take turns",
    "py_shared": "py's loop, also storing into one shared dict: without a GIL, threads "
                 "contend",
    "cy_gil": "the same loop in C, GIL held: compiled is not enough to run in parallel",
    "cy_nogil": "the same C loop inside `with nogil:`: threads run on every core",
    "bigint": "the lesson's big-integer factorial: CPU-bound Python, GIL held",
    "sleep": "time.sleep: IO-bound, the GIL is released while waiting",
}
