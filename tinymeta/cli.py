"""The ``tinymeta`` command: demo, reproduce, gradcheck, bench, info (``--help`` on each)."""
import argparse
import json
import os
import sys
import time

import numpy as np

SINUSOID_LEARNERS = ("maml", "fomaml", "metasgd", "reptile", "mapping", "imaml", "anil", "cavia",
                     "learned-optimizer")


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _make_sinusoid_learner(name, seed, inner_lr=0.01, inner_steps=1, shots=10):
    from . import meta, nn, optim
    model = nn.MLP([1, 40, 40, 1], activation="relu", rng=seed)
    if name == "maml":
        learner = meta.MAML(model, inner_lr=inner_lr, inner_steps=inner_steps)
    elif name == "fomaml":
        learner = meta.MAML(model, inner_lr=inner_lr, inner_steps=inner_steps, first_order=True)
    elif name == "metasgd":
        learner = meta.MetaSGD(model, inner_lr=inner_lr, inner_steps=inner_steps)
    elif name == "reptile":
        # Nichol et al.'s sinusoid setup: 32 inner steps would be theirs; 5 keeps it quick.
        learner = meta.Reptile(model, inner_lr=0.02, inner_steps=5, outer_step_size=0.1)
        return learner, None
    elif name == "mapping":
        learner = meta.MappingLearner(model, rng=seed)
    elif name == "imaml":
        # Rajeswaran et al.'s defaults (lam 2, 5 CG steps); 5 inner steps at MAML's lr.
        learner = meta.IMAML(model, inner_lr=inner_lr, inner_steps=5, lam=2.0, cg_steps=5)
    elif name == "anil":
        learner = meta.ANIL(model, inner_lr=inner_lr, inner_steps=inner_steps)
    elif name == "cavia":
        # Zintgraf et al.'s sinusoid setup: 5 context inputs, inner lr 1.0, one step.
        learner = meta.CAVIA(nn.MLP([1 + 5, 40, 40, 1], activation="relu", rng=seed), num_context=5,
                             inner_lr=1.0, inner_steps=1)
    elif name == "learned-optimizer":
        learner = meta.LearnedOptimizer(model, inner_steps=5, hidden=20, learn_init=True, rng=seed)
    else:
        raise SystemExit(f"tinymeta: unknown learner {name!r}; choose one of {', '.join(SINUSOID_LEARNERS)}")
    return learner, optim.Adam(learner.parameters(), lr=1e-3)


class _Given(argparse.Action):
    """Stores the value and remembers that the user gave it (defaults differ by experiment)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, self.dest + "_given", True)


def _out_dir(path):
    os.makedirs(path, exist_ok=True)
    return path


def cmd_demo(args):
    """MAML on sinusoids, short: train, evaluate before/after adaptation, plot."""
    from . import meta
    from .meta.plots import sinusoid_adaptation
    out = _out_dir(args.out)
    iterations = 300 if args.quick else args.iterations
    tasks = meta.tasks.Sinusoid(k_support=10, k_query=10)
    learner, opt = _make_sinusoid_learner("maml", args.seed)
    print(f"MAML (second order) on sinusoids, Finn et al. 2017: 1-40-40-1 ReLU MLP, 10 shots, "
          f"meta-batch 25, inner lr 0.01, {iterations} meta-iterations")
    t0 = time.perf_counter()
    hist = meta.fit(learner, tasks, opt, iterations=iterations, meta_batch=25, rng=args.seed,
                    log_every=max(1, iterations // 20), progress=not args.quiet)
    took = time.perf_counter() - t0
    res = meta.evaluate(learner, tasks, n_tasks=100 if args.quick else 500, steps=(0, 1, 10),
                        rng=args.seed + 1, k_query=100)
    print(f"trained in {took:.1f} s ({took / max(iterations, 1) * 1e3:.2f} ms per meta-iteration)")
    print("query MSE on new tasks (100 points each), mean +- 95% interval:")
    print(meta.format_evaluation(res))
    fig_path = os.path.join(out, "demo_sinusoid.png")
    sinusoid_adaptation(learner, tasks, rng=args.seed + 2, path=fig_path)
    curve_path = os.path.join(out, "demo_meta_training.png")
    hist.plot(curve_path, title="MAML meta-training on sinusoids")
    print(f"wrote {fig_path} (the Finn figure) and {curve_path}")
    return 0


FEWSHOT_LEARNERS = ("protonet", "maml", "fomaml", "anil", "metasgd")


def _make_fewshot_learner(name, seed):
    """5-way classifiers on MNIST-1D's 40-point signals: a 40-64-64-5 MLP (ProtoNet: a
    40-64-64-64 encoder, Snell et al. 2017), inner steps as in the comparison example."""
    from . import meta, nn, optim
    ce = "cross_entropy"
    if name == "protonet":
        learner = meta.ProtoNet(nn.MLP([40, 64, 64, 64], rng=seed))
    elif name not in FEWSHOT_LEARNERS:
        raise SystemExit(f"tinymeta reproduce mnist1d-fewshot: unknown learner {name!r}; choose one of "
                         f"{', '.join(FEWSHOT_LEARNERS)}")
    else:
        mlp = nn.MLP([40, 64, 64, 5], rng=seed)
        learner = {"maml": lambda: meta.MAML(mlp, inner_lr=0.4, loss=ce),
                   "fomaml": lambda: meta.MAML(mlp, inner_lr=0.4, first_order=True, loss=ce),
                   "anil": lambda: meta.ANIL(mlp, inner_lr=0.4, loss=ce),
                   "metasgd": lambda: meta.MetaSGD(mlp, inner_lr=0.4, loss=ce)}[name]()
    return learner, optim.Adam(learner.parameters(), lr=1e-3)


def _reproduce_fewshot(args):
    """5-way 5-shot episodes: meta-trained on 320 generated MNIST-1D template classes, tested
    on the ten real MNIST-1D digits, which no learner sees while meta-training."""
    from . import meta
    from .data import load_mnist1d, mnist1d_templates
    templates = mnist1d_templates(320, rng=args.seed)
    X, y = load_mnist1d("all", n_samples=320 * 40, templates=templates, seed=args.seed + 1)
    digits_X, digits_y = load_mnist1d("all")
    train_tasks = meta.tasks.FewShotClassification(X, y, n_way=5, k_shot=args.shots, k_query=15)
    test_tasks = meta.tasks.FewShotClassification(digits_X, digits_y, n_way=5, k_shot=args.shots, k_query=15)
    learner, opt = _make_fewshot_learner(args.learner, args.seed)
    t0 = time.perf_counter()
    hist = meta.fit(learner, train_tasks, opt, iterations=args.iterations, meta_batch=args.meta_batch,
                    rng=args.seed, progress=not args.quiet, verbose=not args.quiet)
    if hist.interrupted:
        return 130
    steps = (getattr(learner, "inner_steps", 0),)
    res = meta.evaluate(learner, test_tasks, n_tasks=args.eval_tasks, steps=steps, rng=10_000 + args.seed)
    print(meta.format_evaluation(res))
    return _write_result(args, {
        "experiment": "mnist1d-fewshot", "learner": args.learner, "n_way": 5, "shots": args.shots,
        "seed": args.seed, "iterations": args.iterations, "meta_batch": args.meta_batch,
        "train_seconds": round(time.perf_counter() - t0, 1), "eval_episodes": args.eval_tasks,
        "digit_accuracy": {str(s): {"mean": m["accuracy"][0], "ci95": m["accuracy"][1]} for s, m in res.items()},
    })


def _write_result(args, result):
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
        print(f"wrote {args.json}")
    else:
        print(text)
    return 0


def cmd_reproduce(args):
    """Reproduce a published setup and evaluate on fresh tasks; JSON out. ``sinusoid``: Finn et
    al.'s sine regression. ``mnist1d-fewshot``: 5-way few-shot classification, meta-trained on
    generated MNIST-1D classes and tested on the real digits (needs ``pip install mnist1d``)."""
    from . import meta
    if args.experiment == "mnist1d-fewshot":
        if not getattr(args, "iterations_given", False):
            args.iterations = 1000
        if not getattr(args, "shots_given", False):
            args.shots = 5
        return _reproduce_fewshot(args)
    if args.experiment != "sinusoid":
        raise SystemExit(f"tinymeta reproduce: unknown experiment {args.experiment!r}")
    tasks = meta.tasks.Sinusoid(k_support=args.shots, k_query=args.shots)
    learner, opt = _make_sinusoid_learner(args.learner, args.seed, shots=args.shots)
    ckpt = args.checkpoint or (os.path.join(_out_dir(args.out), f"{args.learner}-seed{args.seed}.npz"))
    t0 = time.perf_counter()
    hist = meta.fit(learner, tasks, opt, iterations=args.iterations, meta_batch=args.meta_batch,
                    rng=args.seed, checkpoint=ckpt, checkpoint_every=args.checkpoint_every,
                    resume=args.resume, progress=not args.quiet, verbose=not args.quiet)
    if hist.interrupted:
        return 130
    took = time.perf_counter() - t0
    steps = (0, 1) if args.learner in ("metasgd",) else (0, 1, 10)
    if args.learner == "mapping":
        steps = (0,)
    t1 = time.perf_counter()
    res = meta.evaluate(learner, tasks, n_tasks=args.eval_tasks, steps=steps, rng=10_000 + args.seed,
                        k_query=100)
    result = {
        "experiment": "sinusoid", "learner": args.learner, "shots": args.shots, "seed": args.seed,
        "iterations": args.iterations, "meta_batch": args.meta_batch, "train_seconds": round(took, 1),
        "eval_tasks": args.eval_tasks, "eval_seconds": round(time.perf_counter() - t1, 1),
        "query_mse": {str(s): {"mean": m["mse"][0], "ci95": m["mse"][1]} for s, m in res.items()},
    }
    print(meta.format_evaluation(res))
    return _write_result(args, result)


def _load_callable(spec, default_module=None, what="function"):
    """``module:name``, ``path/to/file.py:name``, or a bare ``name`` in ``default_module``."""
    import importlib
    import importlib.util
    if ":" in spec:
        where, name = spec.rsplit(":", 1)
    elif default_module is not None:
        where, name = None, spec
    else:
        raise SystemExit(f"tinymeta gradcheck: {what} {spec!r} must look like module:function "
                         "or path/to/file.py:function")
    if where is None:
        module = default_module
    elif where.endswith(".py") or os.sep in where or "/" in where:
        if not os.path.isfile(where):
            raise SystemExit(f"tinymeta gradcheck: no file {where!r} (from {spec!r})")
        mod_name = os.path.splitext(os.path.basename(where))[0]
        spec_ = importlib.util.spec_from_file_location(mod_name, where)
        module = importlib.util.module_from_spec(spec_)
        sys.path.insert(0, os.path.dirname(os.path.abspath(where)))  # its own imports resolve
        spec_.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:  # the console script does not put the cwd on the path
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise SystemExit(f"tinymeta gradcheck: cannot import {where!r} ({exc}); run from the "
                             "folder that holds it, or give a file path: path/to/file.py:function")
    fn = getattr(module, name, None)
    if not callable(fn):
        raise SystemExit(f"tinymeta gradcheck: {module.__name__} has no function {name!r}")
    return fn, module


def _parse_shape(text):
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape looks like 5 or 3,4 or 3x4; got {text!r}") from None


def _check_user_derivation(args):
    """tinymeta gradcheck F GRAD: check a user's hand-written derivative and print the report."""
    import tinymeta as tm
    if args.op is not None:
        raise SystemExit("tinymeta gradcheck: --op selects tinymeta's own ops; it does not combine "
                         "with a FUNCTION GRADIENT pair")
    if args.gradient is None:
        raise SystemExit("tinymeta gradcheck: give the gradient too, e.g. "
                         "tinymeta gradcheck mymodule:loss mymodule:grad_loss --shape 5")
    f, module = _load_callable(args.function)
    g, _ = _load_callable(args.gradient, default_module=module, what="gradient")
    if args.inputs:
        make, _ = _load_callable(args.inputs, default_module=module, what="--inputs")
        xs = make()
        xs = tuple(xs) if isinstance(xs, (tuple, list)) else (xs,)
    elif args.shape:
        rng = np.random.default_rng(args.seed)
        xs = tuple(rng.standard_normal(s) for s in args.shape)
    else:
        raise SystemExit("tinymeta gradcheck: say where to check: --shape S [S ...] (random "
                         "float64 inputs, one shape per input) or --inputs module:make_inputs")
    wrt = args.wrt if args.wrt else None
    if args.mode == "grad":
        report = tm.check_grad(f, g, *xs, wrt=wrt)
    elif args.mode == "backward":
        report = tm.check_backward(f, g, *xs, wrt=wrt, seed=args.seed)
    else:
        if len(xs) != 1:
            raise SystemExit("tinymeta gradcheck --mode hessian: f takes one input")
        report = tm.check_hessian(f, g, xs[0])
    print(report)
    return 0 if report else 1


def cmd_gradcheck(args):
    if args.function is not None:
        return _check_user_derivation(args)
    from . import kernels, opcheck
    if args.jit is not None:
        kernels.set_enabled(args.jit == "on")
    rows = list(opcheck.run(args.op))
    if not rows:
        raise SystemExit(f"tinymeta gradcheck: no op matches {args.op!r}")
    width = max(len(r[0]) for r in rows)
    print(f"{'op':<{width}}  1st order  2nd order  max |analytic - numeric|")
    for name, ok1, ok2, err in rows:
        print(f"{name:<{width}}  {'ok' if ok1 else 'FAIL':<9}  {'ok' if ok2 else 'FAIL':<9}  {err:.2e}")
    failed = [r[0] for r in rows if not (r[1] and r[2])]
    print(f"{len(rows) - len(failed)} of {len(rows)} ops pass first- and second-order checks "
          f"(float64, central differences, eps=1e-6; kernels {'on' if kernels.enabled() else 'off'})")
    return 1 if failed else 0


def _numba_status():
    """(installed, version or None, why not), found without importing numba (0.35 s)."""
    import importlib.metadata
    import importlib.util
    try:
        spec = importlib.util.find_spec("numba")
    except (ImportError, ValueError) as exc:
        return False, None, f"numba cannot be found: {exc}"
    if spec is None:
        return False, None, "numba is not installed (pip install numba); everything runs in NumPy"
    try:
        return True, importlib.metadata.version("numba"), None
    except importlib.metadata.PackageNotFoundError:
        return True, "unknown", None


def cmd_info(args):
    import platform
    import numpy
    from . import __version__, kernels
    print(f"tinymeta {__version__}  (python {platform.python_version()}, numpy {numpy.__version__})")
    print(f"default dtype: {__import__('tinymeta').get_default_dtype()}")
    if args.warm:
        _warm_kernels()
    state = kernels.info()
    installed, version, why = _numba_status()
    if state["numba_available"] is False:  # tried in this process and failed to load
        installed, why = False, state["fallback_reason"] or "numba failed to import"
    print(f"numba: {'installed, version ' + version if installed else 'not available'}"
          + (f" ({why})" if why else ""))
    if not state["enabled"]:
        reason = state["fallback_reason"] or ("TINYMETA_JIT=0 in the environment, or set_enabled(False)"
                                              if installed else "numba is not available")
        print(f"kernels: off, the NumPy path runs ({reason})")
    else:
        print("kernels: on: hot paths run numba-compiled, each compiled (or loaded from the cache) "
              "on its first call")
    compiled = state["compiled"]
    print(f"compiled in this process: {len(compiled)} of {len(kernels.NAMES)} kernels"
          + (f" ({', '.join(compiled)})" if compiled else
             " (kernels are off)" if not state["enabled"] else
             " (numba loads lazily: none run until a kernel is first called; --warm runs a "
             "training step first)"))
    print(f"kernel cache: {state['cache_dir']}")
    return 0


def _warm_kernels():
    """Run one tiny training step so every hot kernel compiles (or loads from cache)."""
    from . import nn, optim
    from .nn import functional as F
    model = nn.MLP([4, 8, 3], rng=0)
    opt = optim.Adam(model.parameters())
    loss = F.cross_entropy(model(np.ones((2, 4), np.float32)), np.array([0, 2]))
    loss.backward()
    opt.step()


def _checkout_bench_script():
    """benchmarks/run.py of the source checkout this tinymeta was imported from, or None
    (an installed wheel has no benchmarks: they live in the repository, not the package)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "benchmarks", "run.py")
    return path if os.path.isfile(path) else None


def cmd_bench(args):
    """Point at the benchmarks, which live in the source checkout; from a checkout, run them."""
    script = _checkout_bench_script()
    if script is None:
        print("tinymeta bench: the benchmarks are not part of the installed package. Get the source\n"
              "(git clone the tinymeta repository), then from its folder run\n"
              "    pip install -e '.[bench]'    # optional: PyTorch, JAX and HIPS autograd to compare with\n"
              "    python benchmarks/run.py --help\n"
              "benchmarks/README.md there lists the workloads, their goals and the commands.",
              file=sys.stderr)
        return 2
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest  # `tinymeta bench -- --quick`
    command = [sys.executable, script, *rest]
    print(f"tinymeta bench: the benchmarks live in the source checkout; running\n    "
          f"{' '.join(command)}", file=sys.stderr, flush=True)
    import subprocess
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:  # the child got the Ctrl-C too
        print("\ninterrupted", file=sys.stderr)
        return 130


def build_parser():
    p = argparse.ArgumentParser(
        prog="tinymeta", description="tinymeta: autodiff to any order on NumPy, and meta-learning on it.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="MAML on sinusoids in under a minute; prints MSE, writes the Finn figure",
                       description=cmd_demo.__doc__)
    d.add_argument("--iterations", type=_positive_int, default=6000, help="meta-iterations (default 6000)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="tinymeta-output", help="folder for the PNGs (default ./tinymeta-output)")
    d.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(fn=cmd_demo)

    r = sub.add_parser("reproduce", help="reproduce a published result (JSON out)",
                       description=cmd_reproduce.__doc__,
                       epilog="Few-shot classification (ProtoNet and every learner on glyphs -> digits): "
                              "python examples/15_meta_learners_compared.py")
    r.add_argument("experiment", choices=["sinusoid", "mnist1d-fewshot"],
                   help="the task family: sinusoid (Finn et al. 2017's sine regression) or mnist1d-fewshot "
                        "(5-way episodes: generated MNIST-1D classes to meta-train, the real digits to test)")
    r.add_argument("--learner", choices=sorted(set(SINUSOID_LEARNERS) | set(FEWSHOT_LEARNERS)), default="maml",
                   help="which meta-learner to train (default maml); fomaml = first-order MAML; "
                        "imaml, anil, cavia and learned-optimizer follow their papers' setups (sinusoid); "
                        f"mnist1d-fewshot takes {', '.join(FEWSHOT_LEARNERS)}")
    r.add_argument("--shots", type=_positive_int, default=10, action=_Given,
                   help="support points per task (sinusoid: also query points; default 10; "
                        "mnist1d-fewshot: per class, default 5)")
    r.add_argument("--iterations", type=_positive_int, default=70000, action=_Given,
                   help="meta-iterations (default 70000, Finn et al.'s; mnist1d-fewshot: 1000)")
    r.add_argument("--meta-batch", type=_positive_int, default=25,
                   help="tasks per meta-iteration (default 25)")
    r.add_argument("--eval-tasks", type=_positive_int, default=1000,
                   help="new tasks to evaluate on, 100 query points each (default 1000)")
    r.add_argument("--seed", type=int, default=0, help="seed of the model and of task sampling (default 0)")
    r.add_argument("--json", help="write the result here (default: print it)")
    r.add_argument("--out", default="tinymeta-output",
                   help="folder for checkpoints (default ./tinymeta-output)")
    r.add_argument("--checkpoint", help="checkpoint path (default OUT/LEARNER-seedS.npz)")
    r.add_argument("--checkpoint-every", type=_positive_int, default=5000,
                   help="iterations between checkpoints (default 5000)")
    r.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint (default: start afresh)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or log lines (default: show them)")
    r.set_defaults(fn=cmd_reproduce)

    g = sub.add_parser(
        "gradcheck", help="check every op's derivatives, or your own hand-derived gradient",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="With no FUNCTION: gradcheck and gradgradcheck of every differentiable op in "
                    "float64, as a table.\n\nWith FUNCTION GRADIENT: check your hand-derived "
                    "gradient against central\ndifferences (and tinymeta autodiff when FUNCTION "
                    "runs on tensors) and print the\nreport (tm.check_grad; --mode backward: "
                    "tm.check_backward; --mode hessian:\ntm.check_hessian). Exit status 1 if it "
                    "fails.",
        epilog="examples:\n"
               "  tinymeta gradcheck --op matmul\n"
               "  tinymeta gradcheck mymodule:loss mymodule:grad_loss --shape 5\n"
               "  tinymeta gradcheck path/to/layer.py:forward backward --mode backward "
               "--shape 4,5 5,3 3\n"
               "  tinymeta gradcheck logreg.py:loss grad --inputs make_data --wrt 0")
    g.add_argument("function", nargs="?", metavar="FUNCTION",
                   help="your function as module:function or path/to/file.py:function "
                        "(f(*xs) -> scalar; with --mode backward a forward(*xs) -> out or (out, cache))")
    g.add_argument("gradient", nargs="?", metavar="GRADIENT",
                   help="its hand-derived gradient (or backward, or Hessian) as module:function, "
                        "file.py:function, or a bare name in FUNCTION's module")
    g.add_argument("--mode", choices=["grad", "backward", "hessian"], default="grad",
                   help="what GRADIENT is: grad_f(*xs) (default), backward(dout, cache), or hess_f(x)")
    g.add_argument("--shape", nargs="+", type=_parse_shape, metavar="S",
                   help="check at random float64 inputs of these shapes, one per input (e.g. 4,5 5,3 3)")
    g.add_argument("--inputs", metavar="CALLABLE",
                   help="a function returning the inputs to check at (module:function or a bare "
                        "name in FUNCTION's module); instead of --shape")
    g.add_argument("--wrt", nargs="+", type=int, metavar="I",
                   help="check only these inputs (indices; default all)")
    g.add_argument("--seed", type=int, default=0, help="seed for --shape inputs and dout (default 0)")
    g.add_argument("--op", help="only ops whose name contains this (without FUNCTION)")
    g.add_argument("--jit", choices=["on", "off"], help="force the numba kernels on or off")
    g.set_defaults(fn=cmd_gradcheck)

    b = sub.add_parser("bench", help="points at the benchmarks (benchmarks/run.py in the source checkout) "
                                     "and, from a checkout, runs them with these arguments",
                       add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(fn=cmd_bench)

    i = sub.add_parser("info", help="versions, whether numba is installed, kernels on/off and compiled",
                       description="What tinymeta runs on: versions, numba's availability and version, "
                                   "whether the kernels are on, which have compiled in this process, "
                                   "and the kernel cache folder.")
    i.add_argument("--warm", action="store_true", help="compile (or load) every kernel first")
    i.set_defaults(fn=cmd_info)
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # benchmarks/run.py parses its own flags (its --help too); argparse's REMAINDER
        # would refuse leading options.
        return cmd_bench(argparse.Namespace(rest=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 0
    if args.command != "bench":  # the benchmarks choose their own thread counts
        from .threads import limit_blas_threads
        limit_blas_threads()
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
