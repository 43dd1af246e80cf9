"""Where the GIL lives in a child process, and what a blocked thread is waiting for.

CPython keeps the main interpreter's GIL inside the static ``_PyRuntime`` structure
(3.11: ``_PyRuntime.ceval.gil``; 3.12+: the main interpreter's ``_gil``, embedded in
``_PyRuntime`` too), so a thread blocked in ``futex()`` on an address inside
``[&_PyRuntime, &_PyRuntime + sizeof)`` is waiting for the GIL. The address comes from
``/proc/PID/maps`` plus the ELF symbol table of the python binary or libpython that
defines it: never a hard-coded offset. A free-threaded build has no GIL to wait for.
"""
from __future__ import annotations

import functools
import os
import platform
import re
from dataclasses import dataclass
from typing import Callable

#: futex(2) per architecture: the only syscall whose first argument is a lock address.
FUTEX_NR = {"x86_64": 202, "aarch64": 98, "arm64": 98, "i686": 240, "armv7l": 240,
            "ppc64le": 221, "s390x": 238, "riscv64": 98}
#: futex_waitv(2) (Linux 5.16+), the same number on every architecture above.
FUTEX_WAITV_NR = 449
#: The syscalls an event loop (asyncio's selector, selectors, select) blocks in while it
#: waits for its next timer or file: epoll_wait, epoll_pwait, poll, select, pselect6,
#: ppoll, and epoll_pwait2 (441 everywhere). aarch64 has only the p-variants.
POLL_NRS = {"x86_64": frozenset({232, 281, 7, 23, 270, 271, 441}),
            "aarch64": frozenset({22, 72, 73, 441}), "arm64": frozenset({22, 72, 73, 441})}


def poll_syscalls(machine: str | None = None) -> frozenset:
    """The event-loop syscall numbers of ``machine`` (this one by default); empty when
    they are not known here, and then no thread is named an event loop."""
    return POLL_NRS.get(machine or platform.machine(), frozenset())

#: The five states of the picture, plus a block too short for any sample to see, and
#: a futex wait that cannot be told apart (GIL or another lock: read from wchan).
CPU, GIL_WAIT, LOCK_WAIT, QUEUED = "cpu", "gil_wait", "lock_wait", "queued"
IO, SHORT = "io", "short"
FUTEX = "futex"
STATES = (CPU, GIL_WAIT, LOCK_WAIT, QUEUED, IO, SHORT, FUTEX)
#: The sampler's states in wchan mode (see ext/_sampler.pyx).
WCHAN_FUTEX, WCHAN_OTHER = -10, -11

_FREE_THREADED_NAME = re.compile(r"python3\.\d+t(?:[-.]|$)")
#: Exported only by free-threaded builds (Py_DECREF calls it from extensions), 3.13t
#: on: the build is told by its symbols even when its binary is not named python3.Nt.
FREE_THREADED_SYMBOL = "_Py_MergeZeroLocalRefcount"


@dataclass(frozen=True)
class GilMap:
    """The GIL's address range in one process, or why there is none."""

    start: int | None
    end: int | None
    source: str            # the file whose symbol table gave it, or the reason it is missing
    free_threaded: bool = False
    futex_nr: int | None = None

    def classify(self, state: int, arg0: int) -> str:
        """A blocked thread's state: GIL wait, another lock, or IO/sleep."""
        if state == WCHAN_FUTEX:
            return FUTEX
        if state in (self.futex_nr, FUTEX_WAITV_NR):
            if self.start is not None and self.start <= arg0 < self.end:
                return GIL_WAIT
            return LOCK_WAIT
        return IO


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int
    path: str


def parse_maps(text: str) -> list[Mapping]:
    """The file-backed lines of /proc/PID/maps."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        lo, hi = parts[0].split("-")
        out.append(Mapping(int(lo, 16), int(hi, 16), int(parts[2], 16), parts[5].strip()))
    return out


def candidate_files(maps: list[Mapping]) -> list[str]:
    """The python binary and any libpython, in map order, each once."""
    seen = []
    for m in maps:
        name = os.path.basename(m.path)
        if (name.startswith("libpython") or name.startswith("python")) and m.path not in seen:
            seen.append(m.path)
    return seen


def elf_symbol(path: str, name: str = "_PyRuntime",
               tables: tuple = (".dynsym", ".symtab")) -> tuple[int, int, int] | None:
    """(symbol value, size, first PT_LOAD vaddr) from PATH's .dynsym or .symtab.
    Remembered per file and modification time: reading a symbol table takes ~0.2 s
    (.symtab, searched when .dynsym lacks the name, up to ~0.8 s for libpython)."""
    stat = os.stat(path)
    return _elf_symbol(path, name, stat.st_mtime_ns, stat.st_size, tables)


@functools.lru_cache(maxsize=16)
def _elf_symbol(path: str, name: str, mtime_ns: int, size: int, tables: tuple):
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        first_load = min((seg["p_vaddr"] - seg["p_offset"] for seg in elf.iter_segments()
                          if seg["p_type"] == "PT_LOAD"), default=0)
        for table in tables:
            section = elf.get_section_by_name(table)
            if section is None:
                continue
            for sym in section.get_symbol_by_name(name) or ():
                if sym["st_value"] and sym["st_shndx"] != "SHN_UNDEF":
                    return sym["st_value"], sym["st_size"], first_load
    return None


def exports_free_threaded(path: str) -> bool:
    """Is PATH (a python binary or libpython) a free-threaded build?"""
    try:  # exported, so in .dynsym: the large .symtab need not be read
        return elf_symbol(path, FREE_THREADED_SYMBOL, (".dynsym",)) is not None
    except (OSError, ValueError):
        return False


def find_gil(maps_text: str, symbol_of: Callable[[str], tuple[int, int, int] | None] = elf_symbol,
             machine: str | None = None,
             free_threaded_of: Callable[[str], bool] = exports_free_threaded) -> GilMap:
    """The GIL's range from a process's maps text; ``symbol_of`` reads a file's ELF.

    A free-threaded build runs without the GIL unless it is turned on (PYTHON_GIL=1,
    -X gil=1, or an extension not marked free-threading-safe), and then it lives where
    a default build keeps it, inside _PyRuntime: the range is found all the same, so
    such waits still show, and ``free_threaded`` says which build it is."""
    futex_nr = FUTEX_NR.get(machine or platform.machine())
    maps = parse_maps(maps_text)
    files = candidate_files(maps)
    free = any(_FREE_THREADED_NAME.search(os.path.basename(p)) for p in files)
    if futex_nr is None:
        return GilMap(None, None, f"futex syscall number unknown on {machine}", futex_nr=None,
                      free_threaded=free)
    for path in files:
        try:
            found = symbol_of(path)
        except (OSError, ValueError):  # unreadable or not an ELF file: try the next
            found = None
        if found is None:
            continue
        value, size, first_load = found
        # The load bias: where the file's offset-0 mapping starts, minus the vaddr its
        # first segment was linked at (0 for PIE and shared libraries).
        base = next((m.start for m in maps if m.path == path and m.offset == 0), None)
        if base is None:
            continue
        start = base - (first_load & ~0xFFF) + value
        return GilMap(start, start + max(size, 1), path, futex_nr=futex_nr,
                      free_threaded=free or free_threaded_of(path))
    if free:
        return GilMap(None, None, "free-threaded build: there is no GIL to wait for",
                      free_threaded=True, futex_nr=futex_nr)
    where = ", ".join(files) or "any mapped python"
    return GilMap(None, None, f"no _PyRuntime symbol in {where}", futex_nr=futex_nr)


def gil_of_process(pid: int) -> GilMap:
    with open(f"/proc/{pid}/maps") as f:
        return find_gil(f.read())
