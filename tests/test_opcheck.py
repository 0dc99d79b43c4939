"""Every case of ``tinymeta.opcheck`` (the table behind ``tinymeta gradcheck``) runs in the
suite: first and second order against finite differences, float64. Before this file the 56
cases only ran when someone typed ``tinymeta gradcheck``."""
import numpy as np
import pytest

import tinymeta as tm
from tinymeta import opcheck

CASES = {case[0]: case for case in opcheck._cases()}


def test_the_table_is_not_empty_and_names_are_unique():
    assert len(CASES) == len(opcheck._cases()) >= 50


@pytest.mark.parametrize("name", list(CASES))
def test_opcheck_case_passes_first_and_second_order(name):
    _, fn, arrays = CASES[name]

    def inputs():
        return [tm.tensor(a.copy(), dtype="float64", requires_grad=True) for a in arrays]

    # raise_exception=True: a failure names the input, element and both values
    assert tm.gradcheck(fn, inputs())
    assert tm.gradgradcheck(fn, inputs())


def test_opcheck_run_reports_every_case():
    rows = list(opcheck.run("neg"))
    assert [r[0] for r in rows] == ["neg"] and rows[0][1] and rows[0][2] and np.isfinite(rows[0][3])
