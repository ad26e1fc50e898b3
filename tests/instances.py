"""Instances shared by the tests: random generators and a catalogue with known optima."""
from __future__ import annotations

import numpy as np

from solvers import Instance


def random_instance(rng, *, n_blocks=None, n_devices=None, rate_model="fixed", monotone=True,
                    ties=False, memory_tight=False, fixed_bandwidth=False, max_blocks=5,
                    extra_devices=3, energy=None, unbudgeted_share=0.3) -> Instance:
    """A small random instance; ``ties`` draws costs from a few integers so values coincide.

    ``energy`` ("tight" or "loose") adds compute and transmit powers and per-round energy
    budgets, drawn after everything else (so the rest of the instance is the one drawn without
    it): each budget is a device's energy on a random block at the equal share B / N times a
    factor in [0.7, 1.3] ("tight") or [1.5, 4] ("loose"); a share ``unbudgeted_share`` of the
    devices has no budget.
    """
    n_blocks = n_blocks or int(rng.integers(1, max_blocks + 1))
    n_devices = n_devices or int(rng.integers(max(1, n_blocks - 1), n_blocks + extra_devices + 1))
    if ties:
        flops = rng.integers(1, 4, n_blocks).astype(float) * 1e11
        bits = rng.integers(1, 3, n_blocks).astype(float) * 1e6
        memory = rng.integers(1, 4, n_blocks).astype(float)
        speed = rng.integers(1, 4, n_devices).astype(float) * 1e11
        efficiency = rng.integers(1, 3, n_devices).astype(float)
        device_memory = rng.integers(1, 5, n_devices).astype(float)
    else:
        flops = rng.uniform(1e11, 1e12, n_blocks)
        bits = rng.uniform(1e5, 1e7, n_blocks) if rng.random() < 0.5 else np.full(n_blocks, 8e5)
        memory = rng.uniform(0.5e9, 3e9, n_blocks)
        speed = rng.uniform(1e11, 5e12, n_devices)
        efficiency = rng.uniform(0.5, 8.0, n_devices)
        device_memory = rng.uniform(0.5e9, 4e9 if memory_tight else 8e9, n_devices)
    if monotone:
        flops, bits, memory = np.sort(flops), np.sort(bits), np.sort(memory)
    snr = None
    if rate_model == "shannon":
        snr = 10 ** rng.uniform(5, 9, n_devices)  # P g / N0 in Hz: 0 dB to 40 dB SNR at 1 MHz
    bandwidth = rng.uniform(1e5, 5e6, n_devices) if fixed_bandwidth else None
    instance = Instance(block_flops=flops, block_bits=bits, block_memory=memory,
                        device_flops_per_s=speed, device_memory=device_memory,
                        total_bandwidth_hz=float(rng.uniform(1e6, 4e7)), rate_model=rate_model,
                        device_spectral_efficiency=None if rate_model == "shannon" else efficiency,
                        device_snr_hz=snr, device_bandwidth_hz=bandwidth,
                        server_flops_per_s=1e14, batch_bits=262144.0)
    if energy is None:
        return instance
    return with_random_budgets(rng, instance, tight=(energy == "tight"),
                               unbudgeted_share=unbudgeted_share)


def with_random_budgets(rng, instance, *, tight=True, unbudgeted_share=0.3) -> Instance:
    """``instance`` with random powers (compute 1-60 W, transmit 0.1-1 W) and energy budgets
    (see :func:`random_instance`)."""
    import dataclasses

    n_devices, n_blocks = instance.n_devices, instance.n_blocks
    compute_power = rng.uniform(1.0, 60.0, n_devices)
    tx_power = rng.uniform(0.1, 1.0, n_devices)
    share = instance.equal_bandwidth()
    energy = (compute_power[:, None] * instance.compute_time_matrix()
              + tx_power[:, None] * instance.block_bits[None, :] / instance.rate(share)[:, None])
    pick = rng.integers(0, n_blocks, n_devices)
    factor = rng.uniform(0.7, 1.3, n_devices) if tight else rng.uniform(1.5, 4.0, n_devices)
    budget = energy[np.arange(n_devices), pick] * factor
    budget[rng.random(n_devices) < unbudgeted_share] = np.inf
    return dataclasses.replace(instance, device_compute_power_w=compute_power,
                               device_tx_power_w=tx_power, device_energy_budget_j=budget)


def _fixed(flops, bits, memory, speed, device_memory, efficiency, bandwidth):
    return Instance(block_flops=np.array(flops, float), block_bits=np.array(bits, float),
                    block_memory=np.array(memory, float),
                    device_flops_per_s=np.array(speed, float),
                    device_memory=np.array(device_memory, float), total_bandwidth_hz=bandwidth,
                    device_spectral_efficiency=np.array(efficiency, float),
                    server_flops_per_s=1e14, batch_bits=262144.0)


# name -> (instance, known P1 optimum or None when infeasible), optima worked out by hand.
MATCHING_CATALOGUE = {
    # Two blocks, three devices, no upload cost to speak of (S = 0 is not allowed in scenarios but
    # is fine for the arrays): latency C/f; blocks 1 and 2 FLOP, devices 1, 2, 4 FLOP/s.
    # Best: fastest two devices, deepest block to the fastest: max(1/2, 2/4) = 0.5.
    "compute-only": (_fixed([1, 2], [0, 0], [1, 1], [1, 2, 4], [9, 9, 9], [1, 1, 1], 2.0), 0.5),
    # Memory forces the slow big device onto the deep block: block 2 needs 5 bytes, only device 0
    # (speed 1) has them: latency 2 / 1 = 2.
    "memory-forced": (_fixed([1, 2], [0, 0], [1, 5], [1, 2, 4], [9, 1, 1], [1, 1, 1], 2.0), 2.0),
    # Upload dominated: S = 1e6 bits, B = 2e6 Hz so B / N = 1e6 Hz per device; rates rho * 1e6.
    # Device rhos 1, 2, 4 -> upload 1, 0.5, 0.25 s; compute negligible (1e-9 s).
    "upload-only": (_fixed([1, 1], [1e6, 1e6], [1, 1], [1e9, 1e9, 1e9], [9, 9, 9], [1, 2, 4],
                           2e6), 0.5 + 1e-9),
    # Identical devices and blocks: every assignment ties at C/f + S/r = 1 + 1 = 2.
    "all-ties": (_fixed([2, 2, 2], [3e6, 3e6, 3e6], [1, 1, 1], [2, 2, 2, 2], [1, 1, 1, 1],
                        [1, 1, 1, 1], 9e6), 2.0),
    # More blocks than devices: infeasible.
    "too-few-devices": (_fixed([1, 2, 3], [0, 0, 0], [1, 1, 1], [1, 1], [9, 9], [1, 1], 3.0), None),
    # Two deep blocks need 5 bytes, only one device has them: infeasible by Hall's condition.
    "memory-hall": (_fixed([1, 2, 3], [0, 0, 0], [1, 5, 5], [1, 1, 1], [9, 1, 1], [1, 1, 1], 3.0),
                    None),
}


def random_scenario(rng, *, rate_model="fixed", n_blocks=None, n_devices=None,
                    fixed_bandwidth=False, name="random") -> dict:
    """A random scenario document (specification, section 5) with monotone block costs."""
    n_blocks = n_blocks or int(rng.integers(1, 5))
    n_devices = n_devices or int(rng.integers(max(1, n_blocks - 1), n_blocks + 4))
    flops = np.sort(rng.uniform(1e11, 1e12, n_blocks))
    memory = np.sort(rng.uniform(0.5e9, 3e9, n_blocks))
    blocks = [{"name": f"layer.{n_blocks - 1 - i}", "flops": float(flops[i]),
               "memory_bytes": float(memory[i]), "params": 24576} for i in range(n_blocks)]
    devices = []
    for k in range(n_devices):
        device = {"name": f"dev-{k}", "flops_per_s": float(rng.uniform(1e11, 5e12)),
                  "memory_bytes": float(rng.uniform(0.5e9, 6e9))}
        if rate_model == "fixed":
            device["spectral_efficiency"] = float(rng.uniform(0.5, 8))
        else:
            device["tx_power_w"] = 0.2
            device["channel_gain"] = float(10 ** rng.uniform(-13, -9))
        if fixed_bandwidth:
            device["bandwidth_hz"] = float(rng.uniform(1e5, 5e6))
        devices.append(device)
    return {"name": name, "model": {"blocks": blocks, "batch_bytes": 32768},
            "devices": devices,
            "channel": {"total_bandwidth_hz": float(rng.uniform(1e6, 4e7)),
                        "rate_model": rate_model},
            "server": {"flops_per_s": 1e14}}


def _jbba_fixed(flops, bits, speed, efficiency, bandwidth):
    n_devices = len(speed)
    return Instance(block_flops=np.array(flops, float), block_bits=np.array(bits, float),
                    block_memory=np.ones(len(flops)), device_flops_per_s=np.array(speed, float),
                    device_memory=np.ones(n_devices), total_bandwidth_hz=bandwidth,
                    device_spectral_efficiency=np.array(efficiency, float),
                    server_flops_per_s=1e14, batch_bits=262144.0)


# name -> (instance, known P2 optimum or None), worked out by hand.
JBBA_CATALOGUE = {
    # One block, one device: all of B to it. T = 1/1 + 4e6 / (2e6 * 2) = 2.
    "single-pair": (_jbba_fixed([1], [4e6], [1], [2.0], 2e6), 2.0),
    # Two identical blocks and devices: equal split B/2 each. T = 1 + 4e6 / (1e6 * 2) = 3.
    "symmetric-pair": (_jbba_fixed([1, 1], [4e6, 4e6], [1, 1], [2.0, 2.0], 2e6), 3.0),
    # Compute 1 s and 2 s, uploads S/(rho b): T = 1 + 1e6/b1 = 2 + 1e6/b2 with b1 + b2 = 3e6.
    # With x = b1 / 1e6: 1/x - 1/(3 - x) = 1, x^2 - 5x + 3 = 0, x = (5 - sqrt 13) / 2, so
    # T = 1 + 1/x = 1 + (5 + sqrt 13) / 6. The third device is too slow to matter.
    "unequal-compute": (_jbba_fixed([1, 2], [1e6, 1e6], [1, 1, 0.001], [1.0, 1.0, 1.0], 3e6),
                        1 + (5 + 13 ** 0.5) / 6),
    "too-few-devices": (_jbba_fixed([1, 1], [1e6, 1e6], [1], [1.0], 1e6), None),
}
