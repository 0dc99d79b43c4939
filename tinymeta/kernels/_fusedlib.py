"""What the generated fused kernels import (numba is loaded by then): reading a 0-d value
that is a 0-d array in one replay and a NumPy scalar in another (a ufunc returns a scalar
for 0-d inputs, broadcast_to an array)."""
from numba import types
from numba.extending import overload


def value(x):
    """x[()] for a 0-d array, x itself for a number."""
    return x[()] if hasattr(x, "shape") else x


@overload(value)
def _value(x):
    if isinstance(x, types.Array):
        return lambda x: x[()]
    return lambda x: x
