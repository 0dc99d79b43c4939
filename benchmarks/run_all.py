"""Every tinymeta benchmark, beside PyTorch, JAX and HIPS autograd when installed.

    python benchmarks/run_all.py [--quick] [--json PATH] [--only per_op,mlp,maml,hvp,cold,kernels,scaling]
                                 [--peers torch,jax,autograd|none] [--plots DIR] [--threads N]

A thin wrapper: the harness is the package tinymeta.bench (also `tinymeta bench`).
Per-kernel timings (each numba kernel against its NumPy twin): benchmarks/bench_kernels.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tinymeta.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
