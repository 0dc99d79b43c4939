"""The summary table (the issue's layout: one line per workload, one column per library)
and the text form of the scaling curves."""
from .harness import _fmt

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


def summary(rows):
    by = {}
    for r in rows:
        if not r.get("skipped"):
            by.setdefault((r["workload"], r.get("case", "")), []).append(r)
    head = ["workload"] + [c for c, _ in COLUMNS] + ["tinymeta", "goal", ""]
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
        off = next((r for r in grp if r.get("goal_text")), None)
        if t is None:
            cells += ["-", "-", ""]
        elif off is not None:  # kernels on vs off: the goal is a speed-up
            cells.append(f"{_fmt(t['median'])} on, {_fmt(off['median'])} off ({off['ratio']:.2f}x)")
            cells += [">= 1.5x", "met" if off.get("goal_met") else "MISSED"]
        elif t.get("goal") is not None:
            cells += [_fmt(t["median"]), f"<= {t['goal']:g}", "met" if t.get("goal_met") else "MISSED"]
        else:
            cells += [_fmt(t["median"]), "-", ""]
        lines.append(cells)
    if not lines:
        return ""
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    out = ["summary (medians; for each library its fastest variant in the table above)",
           "  ".join(h.ljust(w) for h, w in zip(head, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(ln, widths)).rstrip() for ln in lines]
    return "\n".join(out)


def _tag(r):
    impl = r["impl"]
    if "(" in impl:
        return " " + impl[impl.index("("):]
    return ""


def scaling_text(curves):
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
