"""What a run prints: the long table (one line per workload, case and implementation), the
summary (the README's layout: one line per workload, one column per library) and the
scaling curves as text."""


def _fmt(v):
    """A number in 3 to 4 significant digits ("-" for None)."""
    if v is None:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.3g}"


def _fmt_check(c):
    if not c:
        return "-"
    return " ".join(f"{x:.6g}" for x in c)


def table(rows) -> str:
    """The long table: one line per (workload, case, implementation)."""
    head = ["workload", "case", "implementation", "median", "min-max", "cpu", "unit", "ratio",
            "goal", "check (agrees?)"]
    lines = []
    for r in rows:
        if r.get("skipped"):
            lines.append([r["workload"], r.get("case", ""), r["impl"], "skipped", "", "", "", "",
                          "", r["skipped"]])
            continue
        goal = ""
        if r.get("goal") is not None:
            goal = f"<= {r['goal']:g} {'met' if r.get('goal_met') else 'MISSED'}"
        if r.get("goal_text"):
            goal = r["goal_text"]
        ag = r.get("agrees")
        chk = _fmt_check(r.get("check"))
        if ag is not None:
            chk += "  (yes)" if ag else "  (NO)"
        lines.append([r["workload"], r.get("case", ""), r["impl"], _fmt(r["median"]),
                      f"{_fmt(r['min'])}-{_fmt(r['max'])}", _fmt(r.get("cpu_median")), r["unit"],
                      "ref" if r.get("reference") else _fmt(r.get("ratio")), goal, chk])
    return columns(head, lines, group=lambda ln: (ln[0], ln[1]))


def columns(head, lines, group=None) -> str:
    """Lines of cells as left-aligned columns under ``head``, with a blank line wherever
    ``group(line)`` changes."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = ["  ".join(str(h).ljust(w) for h, w in zip(head, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    prev = None
    for ln in lines:
        key = group(ln) if group else None
        if prev is not None and key != prev:
            out.append("")
        prev = key
        out.append("  ".join(str(x).ljust(w) for x, w in zip(ln, widths)).rstrip())
    return "\n".join(out)


# (workload, case) -> label; impl prefix -> column
SUMMARY = [
    (("per_op", "200-op chain, float64"), "per-op overhead, us/op"),
    (("mlp", "784-256-256-10 b128 f32"), "MLP step, ms"),
    (("mlp", "784-256-256-10 b128 f32, BLAS 1 thread"), "MLP step (1 BLAS thread), ms"),
    (("maml", "second order"), "MAML 2nd order, ms/iter"),
    (("maml", "first order"), "MAML 1st order, ms/iter"),
    (("hvp", "1-40-40-1 MSE, 25 points, f32"), "HVP, us"),
    (("cold", "warm numba cache"), "cold start (warm cache), s"),
    (("cold", "empty numba cache"), "cold start (empty cache), s"),
    (("cold", "TINYMETA_JIT=0"), "cold start (JIT off), s"),
    (("kernels", "small MLP 1-40-40-1 b25 step"), "small-MLP step, kernels on/off, ms"),
]
COLUMNS = [("PyTorch", "torch"), ("JAX", "jax"), ("HIPS autograd", "autograd"), ("NumPy by hand", "numpy")]


def summary(rows) -> str:
    """One line per workload of SUMMARY, one column per library (its fastest variant)."""
    by = {}
    for r in rows:
        if not r.get("skipped"):
            by.setdefault((r["workload"], r.get("case", "")), []).append(r)
    head = ["workload"] + [c for c, _ in COLUMNS] + ["tinymeta", "goal", "", "compiled (tm.jit)", "its goal"]
    lines = []
    for key, label in SUMMARY:
        grp = by.get(key)
        if not grp:
            continue
        cells = [label]
        for _, prefix in COLUMNS:
            found = [r for r in grp if r["impl"].split(" ")[0] == prefix]
            best = min(found, key=lambda r: r["median"]) if found else None
            cells.append(f"{_fmt(best['median'])}{_tag(best)}" if best else "-")
        t = next((r for r in grp if r.get("reference")), None)
        off = next((r for r in grp if r.get("speedup_goal") is not None), None)
        if t is None:
            cells += ["-", "-", ""]
        elif off is not None:  # kernels on vs off: the goal is a speed-up
            cells.append(f"{_fmt(t['median'])} on, {_fmt(off['median'])} off ({off['ratio']:.2f}x)")
            cells += [f">= {off['speedup_goal']:g}x", "met" if off.get("goal_met") else "MISSED"]
        elif t.get("goal") is not None:
            cells += [_fmt(t["median"]), f"<= {t['goal']:g}", "met" if t.get("goal_met") else "MISSED"]
        else:
            cells += [_fmt(t["median"]), "-", ""]
        comp = next((r for r in grp if r["impl"] == "tinymeta (compiled)"), None)
        if comp is None:
            cells += ["-", ""]
        elif comp.get("versus_ratio") is not None:
            met = "met" if comp["goal_met"] else "MISSED"
            cells += [f"{_fmt(comp['median'])} ({comp['versus_ratio']:.2f}x {comp['versus'].split(' ')[0]})",
                      f"<= {comp['ratio_goal']:g}x {met}"]
        else:
            cells += [_fmt(comp["median"]), comp.get("goal_text", "")]
        lines.append(cells)
    if not lines:
        return ""
    return ("summary (medians; for each library its fastest variant in the table above)\n"
            + columns(head, lines))


def _tag(r):
    impl = r["impl"]
    if "(" in impl:
        return " " + impl[impl.index("("):]
    return ""


def scaling_text(curves) -> str:
    """The scaling curves (from the scaling workload) as lines of numbers, verdicts first."""
    out = ["scaling (tinymeta; medians)"]
    for k, v in curves.get("verdicts", {}).items():
        out.append(f"  {k}: {v}")
    for name, c in curves.items():
        if not isinstance(c, dict) or "x" not in c:
            continue
        out.append(f"  {c['title']}")
        out.append(f"    {c['xlabel'] + ' (' + c['unit'] + ')':>28}: " + " ".join(f"{x:>8}" for x in c["x"]))
        for label, ys in c["series"].items():
            out.append(f"    {label:>28}: " + " ".join(f"{_fmt(y):>8}" for y in ys))
    return "\n".join(out)


def kernel_text(rows) -> str:
    """The per-kernel workload, one line per kernel and size: NumPy twin, compiled kernel,
    speed-up against its goal, wrapper and public function (us per call); then the kernels'
    cold starts."""
    by = {}
    for r in rows:
        if r["workload"] == "kernel_ops" and not r.get("skipped"):
            by.setdefault(r["case"], {})[r["impl"].split(" ")[0]] = r
    head = ["kernel", "size", "dtype", "numpy", "kernel", "speed-up", "goal", "wrapper", "public"]
    lines, cold, met = [], [], []
    for case, g in by.items():
        if "numpy" not in g:  # a cold start row
            r = next(iter(g.values()))
            cold.append(f"  {case}: {r['median']:.2f} s in process, {r['wall_median']:.2f} s wall")
            continue
        n = g["numpy"]
        goal = ""
        if n.get("speedup_goal") is not None:
            met.append(n["goal_met"])
            goal = f">= {n['speedup_goal']:g} {'ok' if n['goal_met'] else 'MISSED'}"
        lines.append([n["kernel"], n["size"], n["dtype"], _fmt(n["median"]), _fmt(g["kernel"]["median"]),
                      f"{n['ratio']:.2f}x", goal, _fmt(g["wrapper"]["median"]), _fmt(g["public"]["median"])])
    out = ["kernels against their NumPy twins (us per call; speed-up = numpy / kernel)"]
    if lines:
        out += [columns(head, lines), f"goals: {sum(met)} of {len(met)} met"]
    if cold:
        out += ["cold start (fresh process: import + one call of each kernel):"] + cold
    return "\n".join(out)


def sweep_text(rows) -> str:
    """The size sweep: one line per size, "off / on" us per call for each elementwise kernel."""
    cells = {}
    for r in rows:
        if r["workload"] == "kernel_sweep":
            cells.setdefault(r["size"], {}).setdefault(r["kernel"], {})[r["impl"]] = r["median"]
    names = sorted({k for by in cells.values() for k in by})
    lines = [[n] + [f"{by[k]['kernels off']:.2f} / {by[k]['kernels on']:.2f}" for k in names]
             for n, by in cells.items()]
    return "size sweep, public API, us per call: kernels off / on\n" + columns(["n"] + names, lines)


def everything(rows, extra) -> str:
    """All a run prints: the long table, the per-kernel table, the sweep, the scaling
    curves and the summary (each only when its workload ran)."""
    apart = ("kernel_ops", "kernel_sweep")
    parts = [table([r for r in rows if r["workload"] not in apart])]
    if any(r["workload"] == "kernel_ops" for r in rows):
        parts.append(kernel_text(rows))
    if any(r["workload"] == "kernel_sweep" for r in rows):
        parts.append(sweep_text(rows))
    if "scaling" in extra:
        parts.append(scaling_text(extra["scaling"]))
    parts.append(summary(rows))
    return "\n\n".join(p for p in parts if p)
