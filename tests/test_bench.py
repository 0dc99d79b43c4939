"""The benchmark harness (benchmarks/, in the source checkout): its timer's arithmetic, goal
evaluation, agreement checks, the printed tables, the command line, and every workload
run once at a tiny size with no peers. Nothing here asserts how fast anything is."""
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import cold, goals, harness, report, run, timing  # noqa: E402
from benchmarks.timing import Budget  # noqa: E402

TINY = Budget(warmup_s=0.0, target_s=0.0, min_reps=2, max_reps=2, collect=False)


@pytest.fixture
def tiny_budgets(monkeypatch):
    """Every budget at two repetitions of one call, no garbage collection first (0.1-0.3 s
    each once numba is loaded): the workloads run their code, fast."""
    for name in ("standard", "curve", "microseconds"):
        monkeypatch.setattr(Budget, name, classmethod(lambda cls, quick: TINY))


class FakeClock:
    """time.perf_counter and time.process_time that advance only when the timed function runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def tick(self, seconds):
        self.now += seconds


# ----------------------------------------------------------------------------- the timer

@pytest.mark.parametrize("budget, calls_per_rep", [
    (Budget(warmup_s=0.0, target_s=0.0, min_reps=5, max_reps=5), 1),
    (Budget(warmup_s=0.0, target_s=0.0, min_reps=5, max_reps=5, loop_s=64e-6), 64),
])
def test_measure_reports_time_per_call(monkeypatch, budget, calls_per_rep):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    monkeypatch.setattr(timing.time, "process_time", clock)
    calls = []

    def fn():  # each call "takes" 1 us, 2 us every fifth call
        calls.append(1)
        clock.tick(2e-6 if len(calls) % 5 == 0 else 1e-6)

    t = timing.measure(fn, budget, per=2, scale=1e6)  # us per half call
    assert t["reps"] == 5
    if calls_per_rep == 1:
        assert t["median"] == pytest.approx(0.5) and t["max"] == pytest.approx(1.0)
    else:  # a repetition averages 64 calls, 12 or 13 of them slow
        assert 0.59 < t["min"] <= t["median"] <= t["max"] < 0.61
    assert t["cpu_median"] == pytest.approx(t["median"])
    # warm-up (2) + calibration (doubling up to calls_per_rep) + 5 timed repetitions
    assert len(calls) == 2 + (2 * calls_per_rep - 1) + 5 * calls_per_rep


def test_measure_fits_repetitions_in_the_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    monkeypatch.setattr(timing.time, "process_time", clock)
    step = 2.0 ** -13  # about 0.1 ms, exact in binary
    b = Budget(warmup_s=0.0, target_s=64 * step, min_reps=3, max_reps=1000)
    assert timing.measure(lambda: clock.tick(step), b)["reps"] == 64
    assert timing.measure(lambda: clock.tick(1.0), b)["reps"] == 3      # at least min_reps
    assert timing.measure(lambda: clock.tick(1e-9), b)["reps"] == 1000  # at most max_reps


def test_measure_interleaved_alternates_blocks_and_meets_the_same_load(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    monkeypatch.setattr(timing.time, "process_time", clock)
    order = []

    def make(name, cost):
        def fn():  # calls made while the "load" is on (clock past 1 ms) take twice as long
            order.append(name)
            clock.tick(cost * (2 if clock.now > 1e-3 else 1))
        return fn
    b = Budget(warmup_s=0.0, target_s=2e-3, min_reps=4, max_reps=1000, collect=False)
    t = timing.measure_interleaved({"a": make("a", 10e-6), "b": make("b", 20e-6)}, b, scale=1e6, block=5)
    timed = order[4:]  # after two warm-up calls each
    assert timed[:10] == ["a"] * 5 + ["b"] * 5 and timed[10:15] == ["a"] * 5  # blocks of 5, in turn
    assert t["a"]["reps"] == t["b"]["reps"] >= 4
    assert t["a"]["min"] == pytest.approx(10.0) and t["b"]["min"] == pytest.approx(20.0)
    assert t["a"]["max"] == pytest.approx(20.0) and t["b"]["max"] == pytest.approx(40.0)  # both met the load
    assert t["b"]["median"] / t["a"]["median"] == pytest.approx(2.0)


# ----------------------------------------------------------------------------- goals and agreement

def _timed(median):
    return {"median": median, "min": median, "max": median, "reps": 3, "cpu_median": median}


def test_limits_are_met_or_missed_by_tinymetas_median():
    case = "second order"
    assert goals.limit("maml", case) == 1.1
    rows = harness.finish_group([
        harness.row("maml", case, "tinymeta", _timed(1.0), "ms", check=[1.0, 2.0]),
        harness.row("maml", case, "torch (loop)", _timed(10.0), "ms", check=[1.0, 2.0005]),
        harness.row("maml", case, "jax (jit+vmap)", _timed(0.5), "ms", check=[1.0, 2.1]),
    ])
    t, torch, jax = rows
    assert t["reference"] and t["ratio"] == 1.0 and t["goal"] == 1.1 and t["goal_met"] is True
    assert torch["ratio"] == pytest.approx(10.0) and "goal" not in torch  # goals are tinymeta's only
    assert torch["agrees"] is True and jax["agrees"] is False            # rtol 1e-3 by default
    slow = harness.finish_group([harness.row("maml", case, "tinymeta", _timed(1.2), "ms")])[0]
    assert slow["goal_met"] is False


def test_speedup_goals_are_met_or_missed_by_the_ratio():
    case = "small MLP 1-40-40-1 b25 step"
    assert goals.speedup("kernels", case) == 1.5

    def group(off_ms):
        return harness.finish_group([
            harness.row("kernels", case, "tinymeta (kernels on)", _timed(1.0), "ms", reference=True),
            harness.row("kernels", case, "tinymeta (kernels off)", _timed(off_ms), "ms", reference=False)])
    on, off = group(1.6)
    assert on["ratio"] == 1.0 and "goal_met" not in on
    assert off["goal_met"] is True and off["goal_text"] == "speed-up >= 1.5x met"
    assert group(1.4)[1]["goal_met"] is False
    # per-kernel goals: by kernel and size first, else by kernel
    assert goals.kernel_speedup("softmax_xent", "25x5") == 7.6
    assert goals.kernel_speedup("relu", "25x40") == 3.0 and goals.kernel_speedup("bias_act", "1x1") is None


def test_agreement():
    assert harness.agree([1.0, 2.0], [1.0005, 2.0], 1e-3)
    assert not harness.agree([1.0, 2.0], [1.01, 2.0], 1e-3)
    assert not harness.agree([float("nan")], [float("nan")], 1e-3)
    assert harness.agree([1.0], [1.0, 2.0], 1e-3) is None


def test_a_group_without_tinymeta_gets_no_ratio():
    rows = harness.finish_group([harness.row("hvp", "c", "torch", _timed(1.0), "us"),
                                 harness.skipped("hvp", "c", "tinymeta", "why")])
    assert "ratio" not in rows[0] and "reference" not in rows[0]


# ----------------------------------------------------------------------------- what is printed

def test_table_and_summary():
    case = "784-256-256-10 b128 f32"
    rows = harness.finish_group([
        harness.row("mlp", case, "tinymeta", _timed(0.97), "ms", check=[2.0]),
        harness.row("mlp", case, "torch", _timed(1.29), "ms", check=[2.0]),
        harness.row("mlp", case, "jax (eager)", _timed(3.0), "ms"),
        harness.row("mlp", case, "jax (jit)", _timed(0.74), "ms"),
        harness.row("mlp", case, "tinymeta (compiled)", _timed(0.8), "ms"),
        harness.row("mlp", case, "numpy (by hand)", _timed(1.0), "ms"),
        harness.skipped("mlp", case, "autograd (HIPS)", "autograd not installed"),
    ])
    text = report.table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["workload", "case", "implementation"]
    assert "<= 1.5 met" in text and "(yes)" in text and "autograd not installed" in text
    assert any(ln.startswith("mlp") and "1.330" in ln for ln in lines)  # torch's ratio 1.29 / 0.97
    s = report.summary(rows)
    line = next(ln for ln in s.splitlines() if ln.startswith("MLP step, ms"))
    cells = line.split()
    assert "0.74" in cells and "(jit)" in cells and "3.000" not in cells  # JAX's fastest variant
    assert cells[-9:-6] == ["<=", "1.5", "met"] and "0.97" in cells
    # The tape's goal: compiled / NumPy by hand, 0.8 / 1.0 here.
    assert cells[-6:] == ["0.8", "(0.80x", "numpy)", "<=", "0.9x", "met"]
    assert "0.80x numpy (by hand) (<= 0.9x met)" in text


def test_compiled_ratio_goal_missed_and_without_peer():
    case = "784-256-256-10 b128 f32"
    rows = harness.finish_group([harness.row("mlp", case, "tinymeta", _timed(1.0), "ms"),
                                 harness.row("mlp", case, "tinymeta (compiled)", _timed(0.95), "ms"),
                                 harness.row("mlp", case, "numpy (by hand)", _timed(1.0), "ms")])
    assert rows[1]["goal_met"] is False and "0.95x numpy (by hand) (<= 0.9x MISSED)" in rows[1]["goal_text"]
    rows = harness.finish_group([harness.row("maml", "second order", "tinymeta (compiled)", _timed(1.0), "ms")])
    assert rows[0]["goal_text"] == "<= 1.5x jax: no peer row" and "goal_met" not in rows[0]


def test_kernel_and_sweep_text():
    rows = []
    for impl, us in (("numpy twin", 4.0), ("kernel (compiled, outputs passed in)", 1.0),
                     ("wrapper (compiled, allocates)", 1.5), ("public function (checks + dispatch)", 2.0)):
        kw = {"speedup_goal": 3.0} if impl == "numpy twin" else {"reference": impl.startswith("kernel")}
        rows.append(harness.row("kernel_ops", "relu 25x40, float64", impl, _timed(us), "us",
                                kernel="relu", size="25x40", dtype="float64", **kw))
    for impl, us in (("kernels off", 2.0), ("kernels on", 1.0)):
        rows.append(harness.row("kernel_sweep", "relu n=10, float64", impl, _timed(us), "us",
                                kernel="relu", size=10, dtype="float64", reference=impl.endswith("on")))
    rows = harness.finish_group(rows)
    text = report.everything(rows, {})
    line = next(ln for ln in text.splitlines() if ln.startswith("relu "))
    assert line.split() == ["relu", "25x40", "float64", "4.000", "1.000", "4.00x", ">=", "3", "ok",
                            "1.500", "2.000"]
    assert "goals: 1 of 1 met" in text
    assert "2.00 / 1.00" in report.sweep_text(rows)
    assert "relu 25x40, float64" not in text  # not in the long table: the compact one holds it


def test_scaling_text():
    curves = {"verdicts": {"adaptation per step flat": "yes: ..."},
              "c": {"title": "T", "xlabel": "batch", "x": [1, 2], "unit": "ms",
                    "series": {"tinymeta": [0.5, 1.25]}}}
    text = report.scaling_text(curves)
    assert "adaptation per step flat: yes" in text and "0.5" in text and "1.250" in text


# ----------------------------------------------------------------------------- the command line

def test_bad_arguments():
    with pytest.raises(SystemExit):
        run.main(["--only", "nonsense"])
    with pytest.raises(SystemExit):
        run.main(["--peers", "numpy"])
    assert run.main(["--threads", "0"]) == 2


def test_run_writes_json_only_when_asked_or_full(tiny_budgets, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run, "RESULTS", str(tmp_path / "default.json"))
    assert run.main(["--quick", "--peers", "none", "--only", "per_op"]) == 0
    assert not (tmp_path / "default.json").exists()  # a partial run leaves the results alone
    out = tmp_path / "b.json"
    assert run.main(["--quick", "--peers", "none", "--only", "per_op", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "per_op" in text and "summary" in text
    data = json.loads(out.read_text())
    assert "env_threads" in data["header"] and "kernels" in data["header"]
    assert {r["impl"] for r in data["rows"]} == {"tinymeta", "numpy (by hand)"}


def test_missing_peer_is_skipped_with_a_note(monkeypatch):
    ctx = harness.Context(True, ["torch"])
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert ctx.peer("torch") is None
    assert ctx.notes and "torch unavailable" in ctx.notes[0]
    rows = []
    ctx.skip_missing(rows, "w", "c", "torch", "torch")
    ctx.skip_missing(rows, "w", "c", "jax", "jax")  # not wanted: no row
    assert rows == [harness.skipped("w", "c", "torch", "torch not installed")]


def test_tinymeta_bench_points_at_the_checkout(monkeypatch, capsys):
    from tinymeta import cli
    assert cli._checkout_bench_script() == os.path.join(ROOT, "benchmarks", "run.py")
    assert cli.main(["bench", "--help"]) == 0
    assert "benchmarks/run.py" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_checkout_bench_script", lambda: None)  # an installed wheel
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert "not part of the installed package" in err and "python benchmarks/run.py" in err


# ----------------------------------------------------------------------------- every workload, tiny

def _check_rows(rows):
    live = [r for r in rows if not r.get("skipped")]
    assert live
    for r in live:
        assert 0 < r["min"] <= r["median"] <= r["max"], r
        assert r["reps"] >= 1
    assert all(r["agrees"] for r in live if "agrees" in r), [r for r in live if r.get("agrees") is False]
    refs = [r for r in live if r.get("reference")]
    assert refs and all(r["ratio"] == pytest.approx(1.0) for r in refs)
    return live


@pytest.mark.parametrize("name", [w for w in run.WORKLOADS if w not in ("cold", "scaling")])
def test_workload_runs_tiny(name, tiny_budgets, monkeypatch):
    # The kernels' cold starts are cold.run_once's job (tested below): a stand-in here.
    monkeypatch.setattr("benchmarks.kernel_ops.run_once",
                        lambda impl, env: {"seconds": 0.5, "cpu": 0.4, "loss": 13.0, "wall": 0.6})
    import tinymeta as tm
    was = tm.kernels.enabled()
    ctx = harness.Context(True, [])
    rows, failed, extra = run.run_workloads(ctx, [name])
    assert not failed and not extra
    assert tm.kernels.enabled() == was  # workloads that switch the kernels switch them back
    live = _check_rows(rows)
    assert {r["workload"] for r in live} == {name}
    if name in ("per_op", "mlp", "maml"):  # the hand-written NumPy floor agrees with tinymeta
        assert any(r["impl"] == "numpy (by hand)" and r["agrees"] for r in live)
    if name == "kernel_ops":
        with_goal = [r for r in live if r.get("speedup_goal")]
        assert len(with_goal) == 20 and all("goal_met" in r for r in with_goal)  # 10 kernels, 2 sizes
        assert sum("cold start" in r["case"] for r in live) == 3


def test_scaling_runs_tiny(tiny_budgets, tmp_path):
    ctx = harness.Context(True, [], plots=str(tmp_path))
    rows, failed, extra = run.run_workloads(ctx, ["scaling"])
    assert not failed and rows == []
    sc = extra["scaling"]
    for key in ("maml_vs_meta_batch", "maml_vs_inner_steps", "maml_memory_vs_inner_steps",
                "adapt_per_step", "mlp_vs_batch"):
        assert all(len(ys) == len(sc[key]["x"]) for ys in sc[key]["series"].values())
    mem = sc["maml_memory_vs_inner_steps"]["series"]
    assert mem["second order"][-1] > mem["second order"][0]  # second order keeps the inner graphs
    assert (tmp_path / "scaling.png").stat().st_size > 0


def test_cold_start_subprocesses():
    for script in ("tinymeta", "kernels"):
        res = cold.run_once(script, {"TINYMETA_JIT": "0"})
        assert 0 < res["seconds"] < res["wall"]  # the inner time lies within the process's
    assert res["loss"] == 0  # no kernel ran compiled
    import tinymeta as tm
    if tm.kernels.enabled():  # every kernel once, compiled (numba's default cache: warm after the first run)
        assert cold.run_once("kernels", {"TINYMETA_JIT": "1"})["loss"] == len(tm.kernels.NAMES)


def test_cold_workload_rows(monkeypatch):
    """The cold workload's rows from stand-in subprocess results (the real ones: above)."""
    seen = []

    def fake(impl, env):
        seen.append((impl, env["TINYMETA_JIT"], os.path.basename(env["NUMBA_CACHE_DIR"])))
        return {"seconds": 0.5, "cpu": 0.4, "loss": 0.57, "wall": 0.6}
    monkeypatch.setattr(cold, "run_once", fake)
    rows = harness.finish_group(cold.run(harness.Context(True, [])))
    assert [r["case"] for r in rows] == ["warm numba cache", "empty numba cache", "TINYMETA_JIT=0"]
    assert all(r["goal_met"] for r in rows[:2])
    # the first empty-cache run fills the folder the warm runs then use
    assert seen[0] == ("tinymeta", "1", "warm") and seen[1] == ("tinymeta", "1", "warm")
    assert seen[-1][1] == "0"
