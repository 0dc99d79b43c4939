"""The one timer every benchmark uses.

A measurement: warm-up calls first (compilation, caches: at least 2 calls, up to
``warmup_s``), then (unless ``collect`` is off) a garbage collection so that one left over
from set-up does not land in the timed region. A calibration decides how many calls one repetition makes
(``number``: 1, or doubled until a repetition lasts ``loop_s``, as ``timeit`` does for
calls of a few microseconds) and how many repetitions fit in ``target_s`` (clamped to
[min_reps, max_reps]). We report the median, min and max over the repetitions of the time
per call, and the median CPU time per call.

The garbage collector stays on while timing. A tinymeta training step builds a graph
with reference cycles (about 1,200 objects per MAML meta-iteration go to the collector),
so collecting them is a cost its users pay; switching the collector off would hide it and
let memory grow over thousands of repetitions.
"""
import gc
import statistics
import time
from dataclasses import asdict, dataclass


@dataclass
class Budget:
    """How long to spend on one measurement (seconds, and repetition counts)."""

    warmup_s: float
    target_s: float
    min_reps: int
    max_reps: int
    loop_s: float = 0.0  # 0: one call per repetition; else calls per repetition doubled to last this
    collect: bool = True  # gc.collect() before timing (0.1-0.3 s once numba is loaded)

    @classmethod
    def standard(cls, quick: bool) -> "Budget":
        """The whole-step workloads: one call per repetition, about a second per row."""
        if quick:
            return cls(warmup_s=0.03, target_s=0.1, min_reps=3, max_reps=300)
        return cls(warmup_s=0.3, target_s=1.0, min_reps=20, max_reps=20000)

    @classmethod
    def curve(cls, quick: bool) -> "Budget":
        """Scaling curves: many points, so a shorter budget per point."""
        if quick:
            return cls(warmup_s=0.02, target_s=0.05, min_reps=3, max_reps=300)
        return cls(warmup_s=0.2, target_s=0.5, min_reps=10, max_reps=20000)

    @classmethod
    def microseconds(cls, quick: bool) -> "Budget":
        """Single kernel calls of about a microsecond: a fixed number of repetitions, each a
        loop of calls lasting a fifth of 0.1 s (0.02 s quick). No collection first: a kernel
        call makes no garbage, and there are a hundred such measurements."""
        reps, target = (5, 0.02) if quick else (11, 0.1)
        return cls(warmup_s=0.0, target_s=0.0, min_reps=reps, max_reps=reps, loop_s=target / 5,
                   collect=False)

    def to_json(self) -> dict:
        return asdict(self)


def _warm_up(fn, budget: Budget) -> None:
    """At least 2 calls, more until ``warmup_s`` has passed (compilation, caches)."""
    t_end = time.perf_counter() + budget.warmup_s
    for i in range(1000):
        fn()
        if i >= 1 and time.perf_counter() > t_end:
            break


def _run(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - t0


def _calibrate(fn, budget: Budget) -> tuple:
    """(calls per repetition, seconds one repetition takes)."""
    number = 1
    took = max(_run(fn, 1), 1e-7)
    while took < budget.loop_s and number < 1 << 20:
        number *= 2
        took = max(_run(fn, number), 1e-7)
    return number, took


def measure(fn, budget: Budget, per: float = 1.0, scale: float = 1.0) -> dict:
    """Time ``fn()``; returns {median, min, max, reps, cpu_median} per call, in seconds
    * scale / per.

    ``per`` divides each time (ops per call, for microseconds per op); ``scale`` converts
    the unit (1e3 for ms, 1e6 for us). ``cpu_median`` is the median CPU time of the process
    (all its threads) per call: on a loaded machine wall time includes the time other
    processes held the core, CPU time does not (but it counts threads that spin)."""
    _warm_up(fn, budget)
    if budget.collect:
        gc.collect()
    number, took = _calibrate(fn, budget)
    reps = int(min(budget.max_reps, max(budget.min_reps, budget.target_s / took)))
    times, cpus = [], []
    clock, cpu = time.perf_counter, time.process_time
    for _ in range(reps):
        c0 = cpu()
        t0 = clock()
        for _ in range(number):
            fn()
        t1 = clock()
        cpus.append(cpu() - c0)
        times.append(t1 - t0)
    k = scale / per / number
    return {"median": statistics.median(times) * k, "min": min(times) * k, "max": max(times) * k,
            "reps": reps, "cpu_median": statistics.median(cpus) * k}


def measure_interleaved(fns: dict, budget: Budget, per: float = 1.0, scale: float = 1.0,
                        block: int = 5) -> dict:
    """Time several ``fns`` ({name: fn}) against each other: {name: the dict ``measure``
    returns}. Calls alternate in blocks of ``block`` (one call per repetition), round after
    round, until each has had its ``target_s``. On a shared machine the load changes from
    second to second; timed one after the other, two implementations can each meet a
    different load and their ratio moves by 10%. Interleaved, they meet the same one."""
    for fn in fns.values():
        _warm_up(fn, budget)
    if budget.collect:
        gc.collect()
    times = {name: [] for name in fns}
    cpus = {name: [] for name in fns}
    spent = {name: 0.0 for name in fns}
    clock, cpu = time.perf_counter, time.process_time
    while True:
        for name, fn in fns.items():
            for _ in range(block):
                c0 = cpu()
                t0 = clock()
                fn()
                t1 = clock()
                cpus[name].append(cpu() - c0)
                times[name].append(t1 - t0)
                spent[name] += t1 - t0
        n = min(len(t) for t in times.values())
        if n >= budget.max_reps or (n >= budget.min_reps and min(spent.values()) >= budget.target_s):
            break
    k = scale / per
    return {name: {"median": statistics.median(t) * k, "min": min(t) * k, "max": max(t) * k,
                   "reps": len(t), "cpu_median": statistics.median(cpus[name]) * k}
            for name, t in times.items()}
