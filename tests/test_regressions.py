"""Regression tests, each named after the bug it pins."""
import numpy as np

from solvers.baselines import min_cost_matching


def test_min_cost_matching_with_fewer_devices_than_blocks_is_infeasible():
    # scipy's linear_sum_assignment on an N x K matrix with K < N assigns only K blocks; the
    # unassigned ones were read from uninitialised memory.
    assert min_cost_matching(np.ones((1, 3))) is None
