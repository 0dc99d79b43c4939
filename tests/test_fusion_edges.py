"""Fused replays at the edges of NumPy's semantics, where a loop written naively computes
something else: bool arithmetic, NumPy 2's typing of scalars, signed zeros, unsigned
integers, infinite literals, and the kernels turned off after fusing. Program.fuse checks
the fused replay on the arguments it is given only, so each test fuses on harmless inputs
and then replays on the inputs that show the difference, as tm.jit does after its 20th
call. (Each of these failed on the first version of fusion.)"""
import warnings

import numpy as np
import pytest

import tinymeta as tm
from tinymeta import kernels
from tinymeta.tape.jit import FUSE_AFTER

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="numba unavailable: nothing is fused")
T = tm.Tensor


def _bits(x):
    """dtype, shape and raw bytes: -0.0 and 0.0 differ here, as the fusion promise says."""
    a = np.asarray(x.data if type(x) is T else x)
    return a.dtype, a.shape, np.ascontiguousarray(a).tobytes()


def _fused_then_replayed(fn, harmless, showing):
    """(fused replay, unfused replay, eager) on ``showing``, the program fused on ``harmless``.
    Each program here is fused today (each test fails on that); refusing to fuse it is one
    fix, so the tests hold the results, not the fusion."""
    prog, unfused = tm.trace(fn, *harmless), tm.trace(fn, *harmless)
    prog.fuse(*harmless)
    with np.errstate(divide="ignore"):  # 1 / 0 is meant: it shows the sign of a zero
        return prog(*showing), unfused(*showing), fn(*showing)


def _assert_same(fused, unfused, eager):
    assert _bits(unfused) == _bits(eager)  # the unfused replay is right: the kernel is at fault
    assert _bits(fused) == _bits(unfused), (np.asarray(fused.data), np.asarray(unfused.data))


# ----------------------------------------------------------------------------- booleans


def test_bool_plus_bool_in_a_kernel_stays_a_bool():
    # NumPy: True + True is True (logical or), so (m + m) * x is x where m holds. The kernel
    # adds them as integers (2) and never rounds the bool intermediate back: 2 * x.
    ones = T(np.ones(4))
    harmless = [T(np.zeros(4, bool)), ones]
    showing = [T(np.array([True, False, True, True])), ones]
    _assert_same(*_fused_then_replayed(lambda m, x: (m + m) * x, harmless, showing))


def test_bool_times_bool_plus_bool_in_a_kernel_stays_a_bool():
    ones = T(np.ones(4))
    harmless = [T(np.zeros(4, bool)), ones]
    showing = [T(np.array([True, False, True, True])), ones]
    _assert_same(*_fused_then_replayed(lambda m, x: (m * m + m) * x, harmless, showing))


# ----------------------------------------------------------------------------- promotion


def test_comparing_float32_with_a_numpy_float64_compares_in_float64():
    # NumPy 2: a NumPy float64 scalar is not a weak Python float, so x32 == np.float64(0.1)
    # compares in float64 and is False for x = float32(0.1). The kernel casts the literal to
    # float32 (as it rightly does for a Python float) and finds them equal.
    harmless = [T(np.array([0.5, 1.0, 2.0], np.float32))]
    showing = [T(np.array([0.1, 1.0, 2.0], np.float32))]

    def fn(x):
        return tm.where((x * 1.0) == np.float64(0.1), x, x + 1.0) * 2.0
    _assert_same(*_fused_then_replayed(fn, harmless, showing))


def test_comparing_uint64_with_int64_is_exact_as_in_numpy():
    # NumPy 2 compares uint64 with int64 exactly; numba converts both to float64, where
    # 2**53 + 1 and 2**53 are the same number.
    ones = T(np.ones(3))
    harmless = [T(np.zeros(3, np.uint64)), T(np.ones(3, np.int64)), ones]
    showing = [T(np.full(3, 2**53 + 1, np.uint64)), T(np.full(3, 2**53, np.int64)), ones]
    _assert_same(*_fused_then_replayed(lambda u, i, x: (u == i) * x, harmless, showing))


# ----------------------------------------------------------------------------- signed zeros


def test_relu_of_minus_zero_is_plus_zero_in_a_kernel_too():
    # relu(-0.0) is 0.0 unfused (np.maximum(-0.0, 0) and the relu kernel both give +0), but
    # numba's scalar np.maximum returns its first argument on a tie: -0.0, so 1 / relu(x)
    # becomes -inf instead of inf.
    harmless = [T(np.array([1.0, 2.0, 3.0]))]
    showing = [T(np.array([-0.0, 2.0, 3.0]))]
    _assert_same(*_fused_then_replayed(lambda x: 1.0 / tm.relu(x * 1.0), harmless, showing))


@pytest.mark.parametrize("op", [tm.maximum, tm.minimum])
def test_maximum_and_minimum_of_signed_zeros_pick_as_numpy_does(op):
    # On a tie of 0.0 and -0.0 NumPy returns the second argument, numba's scalar form the first.
    harmless = [T(np.array([1.0, 2.0])), T(np.array([3.0, -1.0]))]
    showing = [T(np.array([0.0, -0.0])), T(np.array([-0.0, 0.0]))]
    _assert_same(*_fused_then_replayed(lambda a, b: 1.0 / op(a * 1.0, b), harmless, showing))


def test_tm_jit_after_fusing_stays_equal_to_eager_on_minus_zero():
    # The same defect as tm.jit meets it: fused on the 20th call's data, wrong later.
    fn = lambda x: 1.0 / tm.relu(x * 1.0)  # noqa: E731
    jitted = tm.jit(fn)
    for _ in range(FUSE_AFTER + 2):
        jitted(T(np.array([1.0, 2.0, 3.0])))
    assert any(p.fused for progs in jitted.cache.values() for p in progs)
    x = T(np.array([-0.0, 2.0, 3.0]))
    with np.errstate(divide="ignore"):
        assert _bits(jitted(x)) == _bits(fn(x))


# ----------------------------------------------------------------------------- what is refused


def test_a_chain_with_an_infinite_literal_is_fused():
    # Masking with -inf is common; the kernel's source spells the literal np.float64(-inf),
    # which numba cannot resolve (NameError: inf), so the chain is silently left unfused.
    def fn(x):
        return tm.where(x > 0.0, x, -np.inf) * 2.0

    x = T(np.array([1.0, -1.0, 2.0]))
    prog = tm.trace(fn, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert prog.fuse(x) == 1
    assert _bits(prog(x)) == _bits(fn(x))


# ----------------------------------------------------------------------------- kernels off


def test_turning_the_kernels_off_stops_a_fused_program_running_compiled_loops():
    # set_enabled(False) means "run NumPy from now on"; a program fused before keeps calling
    # its numba kernels. Seen through numba's dispatcher: a replay on a new memory layout
    # (a transposed input) compiles the kernel again.
    def fn(x, y):
        return (x * y + 1.0) * x

    rng = np.random.default_rng(0)
    x, y = T(rng.standard_normal((6, 6))), T(rng.standard_normal((6, 6)))
    prog = tm.trace(fn, x, y)
    assert prog.fuse(x, y) == 1
    dispatchers = [g.kernel for g in prog.fused]
    before = [len(d.signatures) for d in dispatchers]
    was = kernels.enabled()
    kernels.set_enabled(False)
    try:
        prog(T(x.data.T), y)
    finally:
        kernels.set_enabled(was)
    assert [len(d.signatures) for d in dispatchers] == before, "a kernel ran with the kernels off"
