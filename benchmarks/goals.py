"""Every speed goal, in one place (they came from the project's issues).

Three kinds:
- ``LIMITS``: tinymeta's median must be at most this, in the row's unit;
- ``SPEEDUPS``: a ratio, reference time over the other time, must be at least this. For
  the kernels-on/off workload: kernels-off time / kernels-on time. For the per-kernel
  workload: the NumPy twin's time / the compiled kernel's time (looked up by kernel name
  and size, else by kernel name);
- ``COMPILED_RATIOS``: the compiled (``tm.jit``) row's median over a peer's median in the
  same case, measured in the same interleaved rounds, must be at most this.
"""

LIMITS = {
    ("per_op", "200-op chain, float64"): 4.0,           # us per op
    ("mlp", "784-256-256-10 b128 f32"): 1.5,            # ms per step
    ("mlp", "784-256-256-10 b128 f32, BLAS 1 thread"): 1.5,
    ("maml", "second order"): 1.1,                      # ms per meta-iteration
    ("maml", "first order"): 0.7,
    ("hvp", "1-40-40-1 MSE, 25 points, f32"): 400.0,    # us
    ("cold", "warm numba cache"): 1.0,                  # s
    ("cold", "empty numba cache"): 4.0,
}

SPEEDUPS = {
    ("kernels", "small MLP 1-40-40-1 b25 step"): 1.5,
}

# The tape's goals (ratios, because absolute times differ from machine to machine):
# (workload, case) -> (the peer: its rows' implementation prefix, the fastest of them
# counts; the largest ratio allowed).
COMPILED_RATIOS = {
    ("mlp", "784-256-256-10 b128 f32"): ("numpy (by hand)", 0.9),
    ("maml", "second order"): ("jax (jit", 1.5),
    ("hvp", "1-40-40-1 MSE, 25 points, f32"): ("jax (jit", 1.5),
}
COMPILED = "tinymeta (compiled)"

# Lower ends of the speed-ups the kernels issue measured for a serial numba kernel on the
# project's machine (NumPy time / kernel time): each kernel must reach them at its size.
KERNEL_SPEEDUPS = {
    "relu": 3.0, "relu_backward": 2.0, "tanh_backward": 2.0, "sigmoid_backward": 2.0,
    "softmax_xent 128x10": 3.4, "softmax_xent 25x5": 7.6,
    "linear_act 10x1->40 relu": 3.3, "linear_act 25x40->40 relu": 1.5,
    "adam_update": 5.0, "sgd_update": 5.0, "rmsprop_update": 5.0, "adagrad_update": 5.0,
}


def limit(workload: str, case: str):
    """The most tinymeta's median may be in this case, or None."""
    return LIMITS.get((workload, case))


def speedup(workload: str, case: str):
    """The least speed-up this case must show, or None."""
    return SPEEDUPS.get((workload, case))


def kernel_speedup(kernel: str, size: str):
    """The least NumPy-twin / compiled-kernel ratio for ``kernel`` at ``size``, or None."""
    return KERNEL_SPEEDUPS.get(f"{kernel} {size}", KERNEL_SPEEDUPS.get(kernel))


def compiled_ratio(workload: str, case: str):
    """(peer implementation, largest compiled/peer ratio) for this case, or None."""
    return COMPILED_RATIOS.get((workload, case))


def describe() -> str:
    """The goals in one paragraph (for --help)."""
    parts = [f"{w} '{c}' <= {v:g}" for (w, c), v in LIMITS.items()]
    parts += [f"{w} '{c}' speed-up >= {v:g}x" for (w, c), v in SPEEDUPS.items()]
    parts += [f"{w} '{c}' compiled <= {v:g}x {peer}" for (w, c), (peer, v) in COMPILED_RATIOS.items()]
    parts.append("each kernel against its NumPy twin: speed-up >= "
                 + ", ".join(f"{k} {v:g}x" for k, v in KERNEL_SPEEDUPS.items()))
    return "Goals (medians, in each row's unit): " + "; ".join(parts) + "."
