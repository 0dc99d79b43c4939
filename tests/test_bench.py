"""Smoke test of the benchmark harness (tinymeta bench) in its quickest mode, tinymeta only."""
import json

import pytest

from tinymeta.bench import cold, main


def test_bench_quick_runs_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["--quick", "--peers", "none", "--only", "per_op,mlp,maml,hvp,kernels,scaling",
               "--json", str(out), "--plots", str(tmp_path)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "per_op" in text and "summary" in text and "goal" in text

    data = json.loads(out.read_text())
    head = data["header"]
    assert "env_threads" in head and "numpy_blas" in head and len(head["loadavg_start"]) == 3
    rows = [r for r in data["rows"] if not r.get("skipped")]
    workloads = {r["workload"] for r in rows}
    assert workloads == {"per_op", "mlp", "maml", "hvp", "kernels"}
    for r in rows:
        assert 0 < r["min"] <= r["median"] <= r["max"], r
        assert r["reps"] >= 3
    # every implementation agrees with tinymeta on identical inputs
    assert all(r["agrees"] for r in rows if "agrees" in r)
    assert any(r["impl"] == "numpy (by hand)" and r.get("agrees") for r in rows)
    refs = [r for r in rows if r.get("reference")]
    assert all(r["ratio"] == pytest.approx(1.0) for r in refs)
    goals = {(r["workload"], r["case"]) for r in rows if "goal_met" in r}
    assert ("per_op", "200-op chain, float64") in goals and ("maml", "second order") in goals

    sc = data["scaling"]
    for key in ("maml_vs_meta_batch", "maml_vs_inner_steps", "maml_memory_vs_inner_steps",
                "adapt_per_step", "mlp_vs_batch"):
        c = sc[key]
        assert all(len(ys) == len(c["x"]) for ys in c["series"].values())
    mem = sc["maml_memory_vs_inner_steps"]["series"]
    assert mem["second order"][-1] > mem["second order"][0]  # second order keeps the inner graphs
    assert (tmp_path / "scaling.png").stat().st_size > 0


def test_cold_start_subprocess_without_jit():
    res = cold.run_once("tinymeta", {"TINYMETA_JIT": "0"})
    assert 0 < res["seconds"] < res["wall"] and res["loss"] > 0


def test_bad_arguments_exit_with_usage():
    with pytest.raises(SystemExit):
        main(["--only", "nonsense"])
    assert main(["--threads", "0"]) == 2
