"""deadlock: two locks taken in opposite orders, detected, undone, then fixed by one lock order."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from gillab.demos._common import pick

TEXT = {
    "en": {
        "title": "two locks taken in opposite orders: the deadlock detected, undone, then fixed",
        "shows": [
            "The lesson's deadlock: thread A takes lock_1 then lock_2, thread B takes lock_2",
            "then lock_1. Each holds one and waits for the other, forever. Here a watchdog",
            "reads who holds and who waits for which lock, finds the cycle, and tells both",
            "threads to give up (they wait with acquire(timeout=...), never blindly). Then",
            "the fix: every thread takes the locks in one global order.",
        ],
        "detected": "Deadlock detected after {detected_after_s:.3f} s:",
        "edge": "  {thread} holds {holds} and waits for {waits_for}",
        "undone": "Both threads gave up and released what they held; threads still alive: "
                  "{stuck_after}.",
        "none": "No deadlock was seen within {watch_s:g} s.",
        "fix": "Fix, one lock order (lock_1 before lock_2) for both threads: {rounds_done}/"
               "{rounds} rounds each completed in {fix_s:.3f} s; cycles seen by the watchdog: "
               "{fix_cycles}.",
        "why": "A deadlock needs a cycle of waits. If every thread takes locks in the same "
               "order, a thread holding lock_2 never waits for lock_1, so no cycle can form. "
               "The lesson waits with a sleep for the bad interleaving; here the two threads "
               "meet at a barrier after their first lock, so the deadlock happens every time.",
        "fail_detect": "the deadlock was not detected within {watch_s:g} s",
        "fail_stuck": "{stuck_after} deadlocked threads were left running",
        "fail_fix": "the fixed order completed {rounds_done}/{rounds} rounds with "
                    "{fix_cycles} cycles seen",
    },
    "zh": {
        "title": "两把锁以相反顺序获取：检测到死锁、解除，再用统一顺序修复",
        "shows": [
            "课程中的死锁：线程 A 先拿 lock_1 再拿 lock_2，线程 B 先拿 lock_2 再拿 lock_1。",
            "各自持有一把并等待另一把，永远等下去。这里有一个看门狗读取谁持有哪把锁、",
            "谁在等哪把锁，找出环路，并通知两个线程放弃（它们用 acquire(timeout=...) 等待，",
            "而不是盲等）。然后是修复：所有线程按同一个全局顺序获取锁。",
        ],
        "detected": "在 {detected_after_s:.3f} 秒后检测到死锁：",
        "edge": "  {thread} 持有 {holds}，等待 {waits_for}",
        "undone": "两个线程都放弃并释放了所持有的锁；仍存活的线程数：{stuck_after}。",
        "none": "在 {watch_s:g} 秒内没有观察到死锁。",
        "fix": "修复：两个线程都按同一顺序（先 lock_1 后 lock_2）获取锁：每个线程完成了 "
               "{rounds_done}/{rounds} 轮，用时 {fix_s:.3f} 秒；看门狗看到的环路数：{fix_cycles}。",
        "why": "死锁需要一个等待环路。如果所有线程都按同一顺序取锁，持有 lock_2 的线程就不会"
               "再等待 lock_1，环路无从形成。课程用 sleep 等待那种糟糕的交错；这里两个线程在拿到"
               "第一把锁后于一个屏障（Barrier）处会合，所以每次都会发生死锁。",
        "fail_detect": "在 {watch_s:g} 秒内没有检测到死锁",
        "fail_stuck": "有 {stuck_after} 个死锁线程仍在运行",
        "fail_fix": "统一顺序后完成了 {rounds_done}/{rounds} 轮，看到 {fix_cycles} 个环路",
    },
}

POLL_S = 0.005  # how often a waiting thread checks whether it was told to give up


class WaitGraph:
    """Who holds which lock and who waits for which: the facts a deadlock is made of."""

    def __init__(self):
        self._guard = threading.Lock()
        self.holder: dict[str, str] = {}    # lock name -> thread name
        self.waiting: dict[str, str] = {}   # thread name -> lock name

    def note(self, thread: str, lock: str, event: str) -> None:
        with self._guard:
            if event == "waits":
                self.waiting[thread] = lock
            elif event == "holds":
                self.waiting.pop(thread, None)
                self.holder[lock] = thread
            elif event == "gave up":
                self.waiting.pop(thread, None)
            elif event == "released":
                self.holder.pop(lock, None)

    def find_cycle(self) -> list[tuple[str, str, str]]:
        """[(thread, lock it holds, lock it waits for), ...] around a cycle, or []."""
        with self._guard:
            for start in self.waiting:
                path, thread = [], start
                while thread in self.waiting:
                    wanted = self.waiting[thread]
                    holder = self.holder.get(wanted)
                    if holder is None or len(path) > len(self.waiting):
                        break
                    held = next((lk for lk, th in self.holder.items()
                                 if th == thread and lk != wanted), "?")
                    path.append((thread, held, wanted))
                    if holder == start:
                        return path
                    thread = holder
        return []


class TrackedLock:
    """A Lock whose holder and waiters the WaitGraph sees; waiting can be called off."""

    def __init__(self, name: str, graph: WaitGraph):
        self.name, self._lock, self._graph = name, threading.Lock(), graph

    def acquire(self, give_up: threading.Event) -> bool:
        me = threading.current_thread().name
        self._graph.note(me, self.name, "waits")
        while not give_up.is_set():
            if self._lock.acquire(timeout=POLL_S):
                self._graph.note(me, self.name, "holds")
                return True
        self._graph.note(me, self.name, "gave up")
        return False

    def release(self) -> None:
        self._graph.note(threading.current_thread().name, self.name, "released")
        self._lock.release()


def take_both(first: TrackedLock, second: TrackedLock, give_up: threading.Event,
              rounds: int, done: list, index: int, meet: threading.Barrier | None,
              pause_s: float) -> None:
    """The lesson's worker: take ``first``, pause, take ``second``, work, release both."""
    for _ in range(rounds):
        if not first.acquire(give_up):
            return
        try:
            if meet is not None:
                try:
                    meet.wait()  # both now hold their first lock: the deadlock is certain
                except threading.BrokenBarrierError:  # the other never came: nothing to prove
                    return
            time.sleep(pause_s)
            if not second.acquire(give_up):
                return
            second.release()
            done[index] += 1
        finally:
            first.release()


@dataclass(frozen=True)
class Result:
    watch_s: float
    detected_after_s: float | None
    cycle: tuple[tuple[str, str, str], ...]
    stuck_after: int
    rounds: int
    rounds_done: int          # the fewer of the two threads'
    fix_s: float
    fix_cycles: int


def _run(order_a, order_b, rounds: int, meet: bool, pause_s: float, watch_s: float):
    """Start threads A and B and watch them; tell them to give up once a cycle appears."""
    graph = WaitGraph()
    locks = {name: TrackedLock(name, graph) for name in ("lock_1", "lock_2")}
    give_up = threading.Event()
    barrier = threading.Barrier(2, timeout=watch_s) if meet else None
    done = [0, 0]
    threads = [threading.Thread(target=take_both, name=name,
                                args=(locks[first], locks[second], give_up, rounds, done, i,
                                      barrier, pause_s))
               for i, (name, (first, second)) in enumerate((("Thread-A", order_a),
                                                            ("Thread-B", order_b)))]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    cycle, cycles_seen, detected_after = [], 0, None
    deadline = t0 + watch_s
    while any(t.is_alive() for t in threads) and time.perf_counter() < deadline:
        found = graph.find_cycle()
        if found:
            cycles_seen += 1
            cycle, detected_after = found, time.perf_counter() - t0
            give_up.set()  # the deadlocked threads stop waiting and release what they hold
            break
        time.sleep(POLL_S)
    give_up.set()  # past the deadline too: nothing may be left waiting
    for thread in threads:
        thread.join(watch_s)
    elapsed = time.perf_counter() - t0
    return cycle, detected_after, sum(t.is_alive() for t in threads), min(done), cycles_seen, \
        elapsed


def measure(fast: bool = False) -> Result:
    watch_s = 5.0
    pause_s = pick(fast, 0.01, 0.001)
    cycle, detected_after, stuck, _, _, _ = _run(("lock_1", "lock_2"), ("lock_2", "lock_1"),
                                                 rounds=1, meet=True, pause_s=pause_s,
                                                 watch_s=watch_s)
    rounds = pick(fast, 50, 20)
    # The fix: B wants the same two locks but takes them in the one global order.
    _, _, _, rounds_done, fix_cycles, fix_s = _run(("lock_1", "lock_2"), ("lock_1", "lock_2"),
                                                   rounds=rounds, meet=False, pause_s=pause_s,
                                                   watch_s=watch_s)
    return Result(watch_s, detected_after, tuple(cycle), stuck, rounds, rounds_done, fix_s,
                  fix_cycles)


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    fields = vars(result)
    if result.detected_after_s is None:
        lines = [text["none"].format(**fields)]
    else:
        lines = [text["detected"].format(**fields)]
        lines += [text["edge"].format(thread=t, holds=h, waits_for=w) for t, h, w in result.cycle]
    lines.append(text["undone"].format(**fields))
    lines.append(text["fix"].format(**fields))
    lines.append(text["why"])
    return lines


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    fields = vars(result)
    failed = []
    if result.detected_after_s is None or len(result.cycle) != 2:
        failed.append(text["fail_detect"].format(**fields))
    if result.stuck_after:
        failed.append(text["fail_stuck"].format(**fields))
    if result.rounds_done != result.rounds or result.fix_cycles:
        failed.append(text["fail_fix"].format(**fields))
    return failed
