"""event: the traffic light: 20 cars wait on an Event; none moves before set(), all after."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from gillab.demos._common import pick

N_CARS = 20

TEXT = {
    "en": {
        "title": "the traffic light: 20 cars wait on an Event; none moves before set(), all after",
        "shows": [
            "The lesson's traffic light: 20 car threads wait on one Event (the light). The",
            "light stays red for a while, then turns green with set(). Each car stamps the",
            "moment it moves and whether the light was green then.",
        ],
        "result": "Red for {red_ms:g} ms, then set() at t = {green_at_ms:.1f} ms.",
        "cars": "Cars waiting at the red light: {waiting}/{n}. Cars that moved before set(): "
                "{early}; cars that moved after: {moved}/{n}; "
                "first car {first_ms:+.2f} ms after set(), last {last_ms:+.2f} ms.",
        "why": "Event.wait() blocks until another thread calls set(); set() wakes every waiter "
               "at once, and clear() turns the light red again for the next ones.",
        "fail_early": "{early} cars moved before the light turned green",
        "fail_moved": "only {moved}/{n} cars moved after set()",
        "fail_waiting": "only {waiting}/{n} cars were waiting at the red light",
    },
    "zh": {
        "title": "红绿灯：20 辆车在 Event 上等待；set() 之前没有一辆动，之后全部出发",
        "shows": [
            "课程中的红绿灯：20 个汽车线程在同一个 Event（红绿灯）上等待。",
            "灯先红一段时间，然后用 set() 变绿。每辆车都记录它出发的时刻，",
            "以及那时是否是绿灯。",
        ],
        "result": "红灯 {red_ms:g} 毫秒，然后在 t = {green_at_ms:.1f} 毫秒时 set()。",
        "cars": "在红灯前等待的车：{waiting}/{n} 辆。set() 之前出发的车：{early} 辆；之后出发的车：{moved}/{n} 辆；"
                "第一辆在 set() 之后 {first_ms:+.2f} 毫秒出发，最后一辆 {last_ms:+.2f} 毫秒。",
        "why": "Event.wait() 会阻塞，直到另一个线程调用 set()；set() 一次唤醒所有等待者，"
               "clear() 则把灯重新变红，留给后来的车。",
        "fail_early": "有 {early} 辆车在绿灯之前就出发了",
        "fail_moved": "set() 之后只有 {moved}/{n} 辆车出发",
        "fail_waiting": "只有 {waiting}/{n} 辆车在红灯前等待",
    },
}


def car(light: threading.Event, timeout: float, arrivals: list, moves: list, index: int) -> None:
    arrivals[index] = time.monotonic()  # at the light, about to wait
    if light.wait(timeout):
        moves[index] = (time.monotonic(), light.is_set())


@dataclass(frozen=True)
class Result:
    n: int
    red_s: float
    green_at: float               # monotonic time of set(), stamped just before it
    started_at: float
    arrivals: tuple[float | None, ...]            # per car: when it began to wait
    moves: tuple[tuple[float, bool] | None, ...]  # per car: (when it moved, light green then)

    @property
    def waiting(self) -> int:
        """Cars already waiting at the red light when it turned green: the claim is about them."""
        return sum(1 for a in self.arrivals if a is not None and a < self.green_at)

    @property
    def early(self) -> int:
        return sum(1 for m in self.moves if m and (m[0] < self.green_at or not m[1]))

    @property
    def moved(self) -> int:
        return sum(1 for m in self.moves if m and m[0] >= self.green_at and m[1])


def measure(fast: bool = False) -> Result:
    red_s = pick(fast, 1.0, 0.1)
    light = threading.Event()
    arrivals: list = [None] * N_CARS
    moves: list = [None] * N_CARS
    cars = [threading.Thread(target=car, args=(light, red_s + 10, arrivals, moves, i),
                             name=f"car-{i}")
            for i in range(N_CARS)]
    started_at = time.monotonic()
    for thread in cars:
        thread.start()
    time.sleep(red_s)
    green_at = time.monotonic()  # before set(): a car can only move once set() has run
    light.set()
    for thread in cars:
        thread.join()
    return Result(N_CARS, red_s, green_at, started_at, tuple(arrivals), tuple(moves))


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    times = [m[0] for m in result.moves if m]
    fields = {"n": result.n, "red_ms": result.red_s * 1000, "early": result.early,
              "waiting": result.waiting,
              "moved": result.moved,
              "green_at_ms": (result.green_at - result.started_at) * 1000,
              "first_ms": (min(times) - result.green_at) * 1000 if times else float("nan"),
              "last_ms": (max(times) - result.green_at) * 1000 if times else float("nan")}
    return [text["result"].format(**fields), text["cars"].format(**fields), text["why"]]


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    fields = {"n": result.n, "early": result.early, "moved": result.moved,
              "waiting": result.waiting}
    failed = []
    if result.waiting != result.n:
        failed.append(text["fail_waiting"].format(**fields))
    if result.early:
        failed.append(text["fail_early"].format(**fields))
    if result.moved != result.n:
        failed.append(text["fail_moved"].format(**fields))
    return failed
