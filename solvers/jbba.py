"""LoLa's Lagrangian dual ascent for problem P2 (joint bandwidth-and-block allocation).

P2 in epigraph form, with assignment x_kn in {0, 1}, device involvement y_k = sum_n x_kn and
bandwidths b_k >= 0::

    min T   s.t.  sum_n x_kn (C_n / f_k + S_n / r_k(b_k)) <= T   for every device k   (mu_k)
                  sum_k b_k <= B                                                       (lambda)

Relaxing both constraint families with mu >= 0 and lambda >= 0, the Lagrangian is
T (1 - sum_k mu_k) + sum_kn x_kn [mu_k C_n / f_k + mu_k S_n / r_k(b_k) + lambda b_k] - lambda B
(b_k only matters where y_k = 1). It is bounded below in T only if sum_k mu_k = 1, so mu lives on
the simplex, and for fixed (mu, lambda) the dual function splits:

* **bandwidth sub-problem**, per pair, in closed form: phi_kn = min_b mu_k S_n / r_k(b) + lambda b.
  ``fixed``: b = sqrt(mu_k S_n / (lambda rho_k)), phi = 2 sqrt(lambda mu_k S_n / rho_k).
  ``shannon``: phi is convex in b; its stationarity condition r(b)^2 / r'(b) = mu_k S_n / lambda
  has an increasing left side and is solved exactly by bisection on log b (a safeguarded
  one-dimensional root, not a generic optimiser).
  With energy budgets the sub-problem keeps the floor b >= e_kn of the device's budget
  (:meth:`~solvers.model.Instance.energy_bandwidth_floor`) as a constraint: phi is convex in b,
  so its minimiser over b >= e_kn is the unconstrained one clipped up to e_kn (value
  recomputed there), and pairs with e_kn = inf are left out. Keeping the floor inside the
  sub-problem (rather than dualising it) leaves g a valid lower bound on P2 with budgets, and
  every allocation returned is a split of :func:`~solvers.bandwidth.optimal_split`, which keeps
  every device at or above its floor, so it is within every budget.
* **block sub-problem**: a linear assignment on costs mu_k C_n / f_k + phi_kn, solved by the
  Hungarian method (:func:`scipy.optimize.linear_sum_assignment`) over the pairs that survive
  CRUNCH's cut: memory-infeasible pairs and pairs whose compute time alone reaches the incumbent
  latency are removed (no better allocation can use them, so the bound stays valid as
  min(dual, incumbent)).

g(mu, lambda) = sum of the chosen costs - lambda B is a lower bound on the optimum. Updates are
projected supergradient steps with Polyak's step size on the normalised dual (times in units of
the incumbent, bandwidth in units of B):

    s_mu_k = latency of device k under the sub-problem's (x, b);  s_lambda = sum_k b_k / B - 1
    step = theta (UB - g) / ||s||^2,  mu <- proj_simplex(mu + step s_mu),
    lambda <- max(0, lambda + step s_lambda)

theta starts at 1 and halves whenever the best dual value has not improved for ``patience``
iterations. Every new assignment is turned into a feasible allocation with its optimal bandwidth
split (:func:`~solvers.bandwidth.optimal_split`, which equalises finishing times), and the best
one is kept. With ``repair`` (the default) each iteration also recovers the assignment that needs
the least total bandwidth w_kn(UB) to meet the incumbent latency UB (one more Hungarian step on
the same pruned pairs); when that total is below B its split is strictly faster, so the
incumbent descends until sum w = B, the optimality condition of P2. ``repair=False`` gives the
plain dual ascent. Stops when the relative gap (UB - LB) / UB <= ``gap_tolerance``, after
``max_iterations``, when neither the incumbent nor the bound (by 1e-4 of the incumbent) has
improved for ``stall_iterations``, or when theta falls below ``min_theta``.
"""
from __future__ import annotations

import time

import numpy as np

from .bandwidth import optimal_split
from .baselines import min_cost_matching
from .exact import split_result, bandwidth_matrix, equal_share_start, pair_bandwidth
from .model import LN2, Instance
from .result import SolverResult, Status

__all__ = ["solve_dual_ascent", "project_simplex", "bandwidth_subproblem"]


def project_simplex(values: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {mu >= 0, sum mu = 1} (sort-based, O(K log K))."""
    ordered = np.sort(values)[::-1]
    cumulative = np.cumsum(ordered) - 1.0
    index = np.arange(1, len(values) + 1)
    rho = np.nonzero(ordered - cumulative / index > 0)[0][-1]
    return np.maximum(values - cumulative[rho] / (rho + 1), 0.0)


def _capped(values, big=1e6):
    """``np.nan_to_num(values, posinf=big)`` for the supergradient (nan -> 0, +inf -> big,
    -inf -> the most negative float), without its overhead: it runs every iteration."""
    values = np.where(values == np.inf, big, values)
    values = np.where(values == -np.inf, np.finfo(float).min, values)
    return np.where(np.isnan(values), 0.0, values)


def _shannon_rate(b, snr):
    return b * np.log1p(snr / b) / LN2


def bandwidth_subproblem(weight, lam, *, rate_model, spectral_efficiency=None, snr_hz=None,
                         iterations=80):
    """argmin_b and min_b of weight / r(b) + lam b, elementwise (weight = mu_k S_n).

    Returns (bandwidth, value). ``lam = 0`` gives infinite bandwidth (value 0 for ``fixed``,
    weight / ceiling for ``shannon``); ``weight = 0`` gives zero bandwidth and value 0.
    """
    weight = np.asarray(weight, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if rate_model == "fixed":
            if lam <= 0:
                return np.full(weight.shape, np.inf), np.zeros(weight.shape)
            return (np.sqrt(weight / (lam * spectral_efficiency)),
                    2 * np.sqrt(lam * weight / spectral_efficiency))
        weight, snr = np.broadcast_arrays(weight, np.asarray(snr_hz, dtype=float))
        if lam <= 0:
            return np.full(weight.shape, np.inf), weight * LN2 / snr
        # r(b)^2 / r'(b) grows from 0 to infinity; find where it equals weight / lam, in log b.
        target = weight / lam
        lo = np.log(snr) - 60.0
        hi = np.log(snr) + 60.0
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            b = np.exp(mid)
            rate = _shannon_rate(b, snr)
            slope = (np.log1p(snr / b) - snr / (snr + b)) / LN2
            above = rate * rate >= target * slope
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid)
        b = np.exp(hi)
        value = weight / _shannon_rate(b, snr) + lam * b
        zero = weight <= 0
        return np.where(zero, 0.0, b), np.where(zero, 0.0, value)


def _clip_to_floor(bandwidth, value, floor, weight, lam, instance):
    """The bandwidth sub-problem under b >= e: the convex minimiser clipped up to the floor."""
    clipped = np.isfinite(floor) & (bandwidth < floor)
    if not clipped.any():
        return bandwidth, value
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        quality = (instance.device_spectral_efficiency if instance.rate_model == "fixed"
                   else instance.device_snr_hz)[:, None]
        at_floor = np.where(clipped, floor, 1.0)
        rate = (at_floor * quality if instance.rate_model == "fixed"
                else _shannon_rate(at_floor, quality))
        floor_value = np.where(weight > 0, weight / rate, 0.0) + lam * at_floor
    return np.where(clipped, floor, bandwidth), np.where(clipped, floor_value, value)


def _mode_terms(instance: Instance) -> list:
    """Per allowed mode: fixed time (K, N), payload bits (1, N), allowed pairs (K, N), energy
    floor (K, N) or None (section 9)."""
    terms = []
    devices = np.arange(instance.n_devices)[:, None]
    for _, fixed_s, bits, ok, energy_flops in instance.mode_terms():
        floor = None
        if instance.has_energy_budgets:
            floor = instance.energy_floor(np.broadcast_to(energy_flops, fixed_s.shape),
                                          np.broadcast_to(bits, fixed_s.shape), devices)
            ok = ok & np.isfinite(floor)
        terms.append((fixed_s, bits, ok, floor))
    return terms


def _mode_costs(terms, mu, lam, instance, kwargs):
    """The pair costs mu_k t + phi of the best mode of every pair, with that mode's bandwidth,
    fixed time and payload (the Lagrangian's per-pair minimum over modes)."""
    best = None
    for fixed_s, bits, ok, floor in terms:
        weight = mu[:, None] * np.broadcast_to(bits, fixed_s.shape)
        band, value = bandwidth_subproblem(weight, lam, rate_model=instance.rate_model,
                                           **kwargs)
        if floor is not None:
            band, value = _clip_to_floor(band, value, floor, weight, lam, instance)
        with np.errstate(invalid="ignore"):
            cost = np.where(ok, mu[:, None] * fixed_s + value, np.inf)
        full_bits = np.broadcast_to(bits, fixed_s.shape)
        if best is None:
            best = [cost, band, fixed_s, full_bits]
            continue
        better = cost < best[0]
        best = [np.where(better, cost, best[0]), np.where(better, band, best[1]),
                np.where(better, fixed_s, best[2]), np.where(better, full_bits, best[3])]
    return best


def solve_dual_ascent(instance: Instance, *, max_iterations=300, gap_tolerance=1e-4,
                      patience=15, min_theta=1e-4, stall_iterations=60, repair=True,
                      time_limit_s=None, **_) -> SolverResult:
    """LoLa's dual ascent for P2 (module docstring). ``history`` records every iteration.

    ``time_limit_s`` stops the iterations when the time is up (the incumbent and the best dual
    bound so far are returned).
    """
    deadline = None if time_limit_s is None else time.perf_counter() + float(time_limit_s)
    stopped = ""
    start = equal_share_start(instance)
    if start is None:
        return SolverResult.infeasible()
    best_assignment, upper, best_bandwidth = start
    if not np.isfinite(upper):
        return SolverResult.infeasible("no allocation has a finite round latency")
    K, N = instance.n_devices, instance.n_blocks
    budget = instance.total_bandwidth_hz
    compute = instance.compute_time_matrix()
    allowed = instance.memory_feasible()
    energy_floor = instance.energy_bandwidth_floor()
    if energy_floor is not None:
        allowed = allowed & np.isfinite(energy_floor)
    modes = _mode_terms(instance) if instance.modes != ("local",) else None
    if modes is not None:
        # Section 9: each pair's Lagrangian cost is the least over its allowed modes (the
        # mode is one more discrete choice inside the pair, so g stays a lower bound); the
        # CRUNCH cut keeps a pair while some mode's fixed time is below the incumbent.
        allowed = np.logical_or.reduce([ok for _, _, ok, _ in modes])
        compute = np.min([np.where(ok, fixed_s, np.inf) for fixed_s, _, ok, _ in modes], axis=0)
    bits = instance.block_bits
    unique_bits, bits_index = np.unique(bits, return_inverse=True)
    efficiency = instance.device_spectral_efficiency
    snr = instance.device_snr_hz

    # Normalised units: time / reference, bandwidth / B.
    reference = upper
    mu = np.zeros(K)
    mu[best_assignment] = 1.0 / N
    if instance.rate_model == "fixed":
        per_hz = efficiency[best_assignment]
    else:
        share = budget / N
        per_hz = _shannon_rate(share, snr[best_assignment]) / share
    # lambda that makes the closed-form bandwidths of the start sum to B (fixed-rate formula).
    lam = (np.sum(np.sqrt(mu[best_assignment] * bits / per_hz)) / budget) ** 2

    seen = {tuple(best_assignment.tolist())}
    lower, theta, stale, last_improvement = 0.0, 1.0, 0, 0
    repaired_at = None
    history = []
    columns = np.arange(N)
    # Loop invariants, hoisted: the loop runs hundreds of times on small arrays, where numpy's
    # per-call overhead is most of the cost.
    kwargs = ({"spectral_efficiency": efficiency[:, None]} if instance.rate_model == "fixed"
              else {"snr_hz": snr[:, None]})
    unique_bits_row = unique_bits[None, :]
    usable_at = None
    for iteration in range(1, max_iterations + 1):
        # Bandwidth sub-problem per (device, distinct payload), then per pair.
        if modes is None:
            weight = mu[:, None] * unique_bits_row
            band_u, value_u = bandwidth_subproblem(weight, lam, rate_model=instance.rate_model,
                                                   **kwargs)
            bandwidth_pair, value_pair = band_u[:, bits_index], value_u[:, bits_index]
            if energy_floor is not None:
                bandwidth_pair, value_pair = _clip_to_floor(
                    bandwidth_pair, value_pair, energy_floor, mu[:, None] * bits[None, :], lam,
                    instance)
            cost = mu[:, None] * compute + value_pair
            pair_time, pair_bits = compute, bits[None, :]
        else:
            cost, bandwidth_pair, pair_time, pair_bits = _mode_costs(modes, mu, lam, instance,
                                                                     kwargs)
        if usable_at != upper:  # the cut moves with the incumbent only
            usable_at = upper
            usable = allowed & (compute < upper)
            blocked = ~usable
        matching_cost = cost.copy()
        matching_cost[blocked] = np.inf
        assignment = min_cost_matching(matching_cost)
        if assignment is None:  # only the incumbent's pairs survive the cut
            lower = upper
            break
        dual = float(cost[assignment, columns].sum() - lam * budget)
        if dual > lower * (1 + 1e-12):
            if dual > lower + 1e-4 * upper:  # a real advance of the bound, not a crawl
                last_improvement = iteration
            lower, stale = dual, 0
        else:
            stale += 1
        # Primal recovery: the assignment in hand and, with ``repair``, the assignment that
        # needs the least total bandwidth to meet the incumbent latency (if it needs less than
        # B, its optimal split is strictly faster), each with its optimal bandwidth split.
        candidates = [assignment]
        if repair and upper != repaired_at:  # the repair depends on the incumbent only
            repaired_at = upper
            need = bandwidth_matrix(instance, upper)
            repaired = min_cost_matching(np.where(usable, need, np.inf))
            if repaired is not None and need[repaired, columns].sum() < budget:
                candidates.append(repaired)
        for candidate in candidates:
            key = tuple(candidate.tolist())
            if key in seen:
                continue
            seen.add(key)
            # W_a is decreasing in T: an assignment that needs B or more to meet the incumbent
            # latency cannot beat it, and one bandwidth evaluation says so (the exact split,
            # a bisection, is computed only for the others).
            if not pair_bandwidth(instance, upper, candidate).sum() < budget:
                continue
            latency, split = optimal_split(instance, candidate[None, :])
            if latency[0] < upper:
                upper, best_assignment, best_bandwidth = float(latency[0]), candidate, split[0]
                last_improvement = iteration
        lower = min(lower, upper)
        gap = (upper - lower) / upper
        # Supergradient at (mu, lambda) in normalised units.
        chosen_bandwidth = bandwidth_pair[assignment, columns]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = (chosen_bandwidth * efficiency[assignment] if instance.rate_model == "fixed"
                    else _shannon_rate(chosen_bandwidth, snr[assignment]))
            device_latency = (pair_time[assignment, columns]
                              + np.broadcast_to(pair_bits, pair_time.shape)[assignment,
                                                                           columns] / rate)
        grad_mu = np.zeros(K)
        grad_mu[assignment] = _capped(device_latency / reference)
        grad_lambda = float(_capped(np.asarray(chosen_bandwidth.sum() / budget - 1.0)))
        norm = float(grad_mu @ grad_mu + grad_lambda * grad_lambda)
        step = theta * (upper - dual) / reference / norm if norm > 0 else 0.0
        history.append({"iteration": iteration, "primal_s": upper, "dual_s": dual,
                        "best_dual_s": lower, "gap": gap, "step": step, "theta": theta})
        if gap <= gap_tolerance:
            break
        if deadline is not None and time.perf_counter() >= deadline:
            stopped = f"time limit of {time_limit_s:g} s reached; "
            break
        if iteration - last_improvement >= stall_iterations:
            break
        if stale >= patience:
            theta, stale = theta / 2, 0
            if theta < min_theta:
                break
        mu = project_simplex(mu + step * grad_mu)
        lam_normalised = max(0.0, lam * budget / reference + step * grad_lambda)
        lam = lam_normalised * reference / budget
    status = Status.OPTIMAL if (upper - lower) <= 1e-9 * upper else Status.FEASIBLE
    result = split_result(instance, best_assignment, best_bandwidth, status,
                           lower_bound_s=lower, iterations=len(history), history=history)
    if history:
        result.message = (f"{stopped}{len(history)} iterations, relative gap to the dual bound "
                          f"{history[-1]['gap']:.2e}")
    return result
