"""An independent reference for tiny instances, written from SPEC sections 2-3, 5, 8, 9 and 10 only.

The reference imports neither :mod:`solvers` nor :mod:`lola`: the scenario dict (SPEC section 5,
inline ``model.blocks``) is read directly, so that a mistake shared by the real parser, cost
model and solvers cannot hide behind the same code. Only the test helpers at the end
(:func:`solve_every_method`) call the public API (``lola.solve``, ``solvers.methods_for``);
:func:`check_result` reads nothing but the result dict and the scenario dict.

Model (SPEC 8/9/10). A device k trains a non-empty set A of blocks (indices in list order, i.e.
depth order; the deepest block d of A is the one with the largest index) either

* ``local``: |A| <= c_k, m(A) = m_d + sum_{n in A, n != d} mu_n <= M_k;
  compute_s = C(A) / f_k with C(A) = C_d + sum_{n != d} delta_n; upload bits S(A) = sum q D_n;
* ``split`` (|A| = 1, block with the four split keys, device with ``downlink_bps``, server with
  ``flops_per_s``): m^split_n <= M_k; compute_s = F^dev_n / f_k; server_s = F^srv_n / f_srv;
  downlink_s = 8 A_n / R^down_k; upload bits 8 A_n + S_n;

latency T = compute_s + server_s + downlink_s + bits / r_k(b), energy E = P^c compute_s +
P^tx bits / r_k(b) <= energy_budget_j (when the device has a budget).

P1 (``reference_p1``): every device's bandwidth is its ``bandwidth_hz`` when all devices have one,
else B / min(K, N); the optimum is the least max latency over all partitions of the blocks into
per-device feasible sets (each device's set with the best of its feasible modes). The
partitions are enumerated by a subset dynamic programme over the devices (exactly the same
minimum as enumerating every assignment; :func:`reference_p1_naive` enumerates them one by one
and the tests check the two agree).

P2 (``reference_p2``): for a latency T, each (device, set, mode) needs the least bandwidth b with
latency <= T and energy <= budget (fixed rate: closed form; shannon: bisection on b); T is
feasible when some partition needs sum b <= B (subset DP, min-sum); the least feasible T is found
by bisection on T to relative 1e-10 (many trial T at once, see :func:`_bisect_latency`).
:func:`reference_p2_naive` instead enumerates assignments and bisects each one on its own.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

LN2 = math.log(2.0)
DEFAULT_NOISE_PSD = 10 ** (-174 / 10) * 1e-3
SPLIT_KEYS = ("split_device_flops", "split_server_flops", "split_memory_bytes", "cut_bytes")
REL_TOL_T = 1e-10


# ---------------------------------------------------------------------------------------------
# Reading a scenario dict


@dataclass
class Option:
    """One way for device ``device`` to train the blocks in ``blocks`` (a sorted tuple)."""

    device: int
    blocks: tuple
    mode: str
    compute_s: float     # the device's own compute (energy uses this)
    fixed_s: float       # compute_s + server_s + downlink_s
    server_s: float
    downlink_s: float
    bits: float          # uploaded bits
    memory: float

    @property
    def mask(self) -> int:
        return sum(1 << n for n in self.blocks)


@dataclass
class Model:
    n_blocks: int
    n_devices: int
    block_names: list
    device_names: list
    rate_model: str
    total_bandwidth: float
    rho: np.ndarray          # fixed model: spectral efficiency (nan otherwise)
    snr_hz: np.ndarray       # shannon model: P g / N0 in Hz (nan otherwise)
    fixed_bandwidth: np.ndarray  # P1 bandwidth per device
    caps: list
    memory: np.ndarray
    compute_power: list      # None where unknown
    tx_power: list
    budget: list             # None where no budget
    options: list = field(default_factory=list)
    doc: dict = None

    # ----- rates
    def rate(self, k: int, b: float) -> float:
        if not b > 0:
            return 0.0
        if self.rate_model == "fixed":
            return b * self.rho[k]
        return b * math.log1p(self.snr_hz[k] / b) / LN2

    def energy(self, option: Option, upload_s: float):
        k = option.device
        if self.compute_power[k] is None or self.tx_power[k] is None:
            return None
        return self.compute_power[k] * option.compute_s + self.tx_power[k] * upload_s

    def energy_ok(self, option: Option, upload_s: float) -> bool:
        k = option.device
        if self.budget[k] is None:
            return True
        return self.energy(option, upload_s) <= self.budget[k]


def _num(value) -> float:
    return float(value)


def parse(doc: dict, max_blocks: int = 1, modes=("local",)) -> Model:
    """The reference's own reading of a scenario dict with inline blocks."""
    modes = tuple(modes)
    model = doc["model"]
    if "blocks" not in model:
        raise ValueError("the reference model needs inline model.blocks")
    blocks = model["blocks"]
    q = _num(model.get("bits_per_param", 32))
    n_blocks = len(blocks)
    flops = [_num(b["flops"]) for b in blocks]
    mem = [_num(b["memory_bytes"]) for b in blocks]
    bits = [q * _num(b["params"]) for b in blocks]
    dflops = [_num(b.get("extra_flops", 0.0)) for b in blocks]
    dmem = [_num(b.get("extra_memory_bytes", 0.0)) for b in blocks]
    has_split = [all(key in b for key in SPLIT_KEYS) for b in blocks]

    devices = doc["devices"]
    n_devices = len(devices)
    channel = doc["channel"]
    rate_model = channel["rate_model"]
    total_bandwidth = _num(channel["total_bandwidth_hz"])
    noise = _num(channel.get("noise_psd_w_per_hz", DEFAULT_NOISE_PSD))
    server_flops = (doc.get("server") or {}).get("flops_per_s")
    server_flops = None if server_flops is None else _num(server_flops)

    rho = np.full(n_devices, np.nan)
    snr = np.full(n_devices, np.nan)
    for k, d in enumerate(devices):
        if rate_model == "fixed":
            rho[k] = _num(d["spectral_efficiency"])
        elif rate_model == "shannon":
            snr[k] = _num(d["tx_power_w"]) * _num(d["channel_gain"]) / noise
        else:
            raise ValueError(rate_model)
    if all("bandwidth_hz" in d for d in devices):
        p1_bandwidth = np.array([_num(d["bandwidth_hz"]) for d in devices])
    else:
        p1_bandwidth = np.full(n_devices, total_bandwidth / min(n_devices, n_blocks))

    caps = [int(d.get("max_blocks", max_blocks)) for d in devices]
    ref = Model(
        n_blocks=n_blocks, n_devices=n_devices,
        block_names=[b["name"] for b in blocks], device_names=[d["name"] for d in devices],
        rate_model=rate_model, total_bandwidth=total_bandwidth, rho=rho, snr_hz=snr,
        fixed_bandwidth=p1_bandwidth, caps=caps,
        memory=np.array([_num(d["memory_bytes"]) for d in devices]),
        compute_power=[None if "compute_power_w" not in d else _num(d["compute_power_w"])
                       for d in devices],
        tx_power=[None if "tx_power_w" not in d else _num(d["tx_power_w"]) for d in devices],
        budget=[None if "energy_budget_j" not in d else _num(d["energy_budget_j"])
                for d in devices],
        doc=doc)

    for k, d in enumerate(devices):
        f_k = _num(d["flops_per_s"])
        M_k = _num(d["memory_bytes"])
        downlink = d.get("downlink_bps")
        for size in range(1, min(caps[k], n_blocks) + 1):
            for subset in itertools.combinations(range(n_blocks), size):
                deepest = subset[-1]
                if "local" in modes:
                    c = flops[deepest] + sum(dflops[n] for n in subset[:-1])
                    m = mem[deepest] + sum(dmem[n] for n in subset[:-1])
                    s = sum(bits[n] for n in subset)
                    if m <= M_k:
                        ref.options.append(Option(k, subset, "local", c / f_k, c / f_k, 0.0,
                                                  0.0, s, m))
                if ("split" in modes and size == 1 and has_split[deepest]
                        and downlink is not None and server_flops is not None):
                    b = blocks[deepest]
                    m = _num(b["split_memory_bytes"])
                    if m <= M_k:
                        compute = _num(b["split_device_flops"]) / f_k
                        server = _num(b["split_server_flops"]) / server_flops
                        cut_bits = 8.0 * _num(b["cut_bytes"])
                        down = cut_bits / _num(downlink)
                        ref.options.append(Option(k, subset, "split", compute,
                                                  compute + server + down, server, down,
                                                  cut_bits + bits[deepest], m))
    return ref


# ---------------------------------------------------------------------------------------------
# Recomputing one device's costs (used by the tests to check a returned allocation)


def device_costs(doc: dict, device: str, blocks, mode: str = "local", bandwidth: float = 0.0,
                 max_blocks: int = 1) -> dict:
    """compute_s, server_s, downlink_s, upload_s, latency_s, memory_bytes, energy_j and whether
    the set is allowed (cap, memory, split requirements; ``allowed``) for device ``device``
    (name) training the blocks named in ``blocks`` in ``mode`` with uplink ``bandwidth``.
    ``energy_j`` is None when the device's powers are unknown; ``budget_j`` its budget or None."""
    ref = parse(doc, max_blocks=max_blocks, modes=(mode,))
    k = ref.device_names.index(device)
    subset = tuple(sorted(ref.block_names.index(name) for name in blocks))
    option = next((o for o in ref.options if o.device == k and o.blocks == subset), None)
    allowed = option is not None
    if option is None:  # recompute anyway, ignoring the cap/memory/split filters
        loose = parse(_without_limits(doc), max_blocks=len(subset) or 1, modes=(mode,))
        option = next((o for o in loose.options if o.device == k and o.blocks == subset), None)
        if option is None:
            raise ValueError(f"{device} cannot train {blocks} in {mode} mode at all")
    rate = ref.rate(k, bandwidth)
    upload = option.bits / rate if rate > 0 else math.inf
    return {"compute_s": option.compute_s, "server_s": option.server_s,
            "downlink_s": option.downlink_s, "upload_s": upload,
            "latency_s": option.fixed_s + upload, "memory_bytes": option.memory,
            "energy_j": ref.energy(option, upload), "budget_j": ref.budget[k],
            "cap": ref.caps[k], "memory_limit": float(ref.memory[k]), "allowed": allowed}


def _without_limits(doc):
    doc = copy.deepcopy(doc)
    for d in doc["devices"]:
        d["memory_bytes"] = 1e300
        d.pop("max_blocks", None)
    return doc


# ---------------------------------------------------------------------------------------------
# P1


def _p1_option_latency(ref: Model, o: Option) -> float:
    b = ref.fixed_bandwidth[o.device]
    rate = ref.rate(o.device, b)
    if rate <= 0:
        return math.inf
    upload = o.bits / rate
    if not ref.energy_ok(o, upload):
        return math.inf
    return o.fixed_s + upload


def _best_per_device_set(ref: Model, value) -> list:
    """[k] -> {mask: best value over that device's modes} (inf entries dropped)."""
    best = [dict() for _ in range(ref.n_devices)]
    for o in ref.options:
        v = value(o)
        if v < best[o.device].get(o.mask, math.inf):
            best[o.device][o.mask] = v
    return best


def reference_p1(doc: dict, max_blocks: int = 1, modes=("local",)) -> float:
    """The optimal P1 round latency (inf when infeasible)."""
    ref = parse(doc, max_blocks, modes)
    best = _best_per_device_set(ref, lambda o: _p1_option_latency(ref, o))
    full = (1 << ref.n_blocks) - 1
    # f[mask] = least max-latency covering exactly ``mask`` with the devices seen so far
    f = np.full(full + 1, math.inf)
    f[0] = 0.0
    for k in range(ref.n_devices):
        g = f.copy()
        for mask, latency in best[k].items():
            if not math.isfinite(latency):
                continue
            rest = _disjoint(full, mask)
            g[rest | mask] = np.minimum(g[rest | mask], np.maximum(f[rest], latency))
        f = g
    return float(f[full])


def _assignments(ref: Model):
    """Every map block -> device (tuples of device indices), K^N of them."""
    return itertools.product(range(ref.n_devices), repeat=ref.n_blocks)


def _sets_of(ref: Model, assignment):
    sets = [[] for _ in range(ref.n_devices)]
    for n, k in enumerate(assignment):
        sets[k].append(n)
    return [tuple(s) for s in sets]


def reference_p1_naive(doc: dict, max_blocks: int = 1, modes=("local",)) -> float:
    """P1 by enumerating every assignment of blocks to devices (and every mode); slow."""
    ref = parse(doc, max_blocks, modes)
    by_key = {}
    for o in ref.options:
        by_key.setdefault((o.device, o.blocks), []).append(o)
    best = math.inf
    for assignment in _assignments(ref):
        worst = 0.0
        for k, subset in enumerate(_sets_of(ref, assignment)):
            if not subset:
                continue
            worst = max(worst, min((_p1_option_latency(ref, o)
                                    for o in by_key.get((k, subset), [])), default=math.inf))
            if worst >= best:
                break
        best = min(best, worst)
    return best


# ---------------------------------------------------------------------------------------------
# P2


def least_shannon_bandwidth(rate, snr_hz):
    """Least b with b log2(1 + a / b) >= rate, elementwise (inf where rate >= a / ln 2).

    With x = a / b and y = rate ln2 / a in (0, 1), solve ln(1 + x) / x = y: that function
    decreases in x and lies in [1 / (1 + x), 1 / sqrt(1 + x)], so x is in
    [1 / y - 1, 1 / y^2 - 1]; bisect on log x, then b = a / x.
    """
    rate = np.asarray(rate, dtype=float)
    snr = np.broadcast_to(np.asarray(snr_hz, dtype=float), rate.shape)
    out = np.full(rate.shape, np.inf)
    out[rate <= 0] = 0.0
    ok = (rate > 0) & np.isfinite(rate) & (rate * LN2 < snr)
    if not ok.any():
        return out
    y = rate[ok] * LN2 / snr[ok]
    lo = np.log(np.maximum(1.0 / y - 1.0, 1e-300))
    hi = np.log(np.maximum(1.0 / (y * y) - 1.0, 2e-300))
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        x = np.exp(mid)
        above = np.log1p(x) / x >= y   # x small enough: rate still reached
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    out[ok] = snr[ok] / np.exp(lo)     # the largest x reaching the rate = the least b
    return out


def _least_bandwidth(ref: Model, options, latency):
    """(len(options), len(latency)): least bandwidth for each option at each trial latency,
    with the energy floor; inf where none will do."""
    latency = np.asarray(latency, dtype=float)[None, :]
    fixed = np.array([o.fixed_s for o in options])[:, None]
    bits = np.array([o.bits for o in options])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(latency > fixed, bits / (latency - fixed), np.inf)
    floor = np.zeros((len(options), 1))
    for i, o in enumerate(options):
        k = o.device
        if ref.budget[k] is not None:
            left = ref.budget[k] - ref.compute_power[k] * o.compute_s
            floor[i] = ref.tx_power[k] * o.bits / left if left > 0 else np.inf
    need = np.maximum(need, floor)
    devices = np.array([o.device for o in options])
    if ref.rate_model == "fixed":
        return need / ref.rho[devices][:, None]
    return least_shannon_bandwidth(need, ref.snr_hz[devices][:, None])


def _min_total_bandwidth(ref: Model, options, latency):
    """(len(latency),): least sum of bandwidths over all partitions at each trial latency."""
    latency = np.atleast_1d(np.asarray(latency, dtype=float))
    need = _least_bandwidth(ref, options, latency)
    full = (1 << ref.n_blocks) - 1
    best = [dict() for _ in range(ref.n_devices)]
    for o, row in zip(options, need):
        prev = best[o.device].get(o.mask)
        best[o.device][o.mask] = row if prev is None else np.minimum(prev, row)
    f = np.full((full + 1, latency.size), np.inf)
    f[0] = 0.0
    for k in range(ref.n_devices):
        g = f.copy()
        for mask, row in best[k].items():
            rest = _disjoint(full, mask)
            g[rest | mask] = np.minimum(g[rest | mask], f[rest] + row[None, :])
        f = g
    return f[full]


_DISJOINT = {}


def _disjoint(full, mask):
    key = (full, mask)
    if key not in _DISJOINT:
        _DISJOINT[key] = np.array([r for r in range(full + 1) if r & mask == 0])
    return _DISJOINT[key]


def _bisect_latency(feasible, lo, rel=REL_TOL_T, grid=32):
    """Least T > lo with feasible(T) (a vectorised monotone predicate), to relative ``rel``;
    ``lo`` must be infeasible. inf when nothing up to lo * 2^1000 is feasible."""
    hi = lo * 2.0 if lo > 0 else 1e-12
    for _ in range(1000):
        if feasible(np.array([hi]))[0]:
            break
        lo, hi = hi, hi * 2.0
    else:
        return math.inf
    while hi - lo > rel * hi:
        trial = np.linspace(lo, hi, grid + 2)[1:-1]
        ok = feasible(trial)
        first = int(np.argmax(ok)) if ok.any() else grid
        new_lo = trial[first - 1] if first > 0 else lo
        new_hi = trial[first] if first < grid else hi
        if new_hi == hi and new_lo == lo:
            break
        lo, hi = new_lo, new_hi
    return float(hi)


def _p2_lower_start(ref: Model, options):
    """An infeasible latency: some block's quickest option takes at least this long before
    its upload (an option at exactly its fixed time needs infinite bandwidth)."""
    quickest = [min((o.fixed_s for o in options if n in o.blocks), default=math.inf)
                for n in range(ref.n_blocks)]
    return max(quickest)


def reference_p2(doc: dict, max_blocks: int = 1, modes=("local",)) -> float:
    """The optimal P2 (JBBA) round latency (inf when infeasible)."""
    ref = parse(doc, max_blocks, modes)
    options = ref.options
    if not options:
        return math.inf
    lo = _p2_lower_start(ref, options)
    if not math.isfinite(lo):
        return math.inf
    B = ref.total_bandwidth
    # Feasible at all? As T grows, each option's bandwidth falls to its energy floor.
    if not _min_total_bandwidth(ref, options, [math.inf])[0] <= B:
        # sum of floors > B: no T will do (energy floors alone exceed B); == B handled below
        return math.inf
    return _bisect_latency(lambda t: _min_total_bandwidth(ref, options, t) <= B, lo)


def reference_p2_naive(doc: dict, max_blocks: int = 1, modes=("local",)) -> float:
    """P2 by enumerating every assignment (and every mode per device) and bisecting each
    assignment's latency on its own; slow."""
    ref = parse(doc, max_blocks, modes)
    by_key = {}
    for o in ref.options:
        by_key.setdefault((o.device, o.blocks), []).append(o)
    B = ref.total_bandwidth
    best = math.inf
    seen = set()
    for assignment in _assignments(ref):
        sets = _sets_of(ref, assignment)
        if tuple(sets) in seen:
            continue
        seen.add(tuple(sets))
        choices = [by_key.get((k, s), []) for k, s in enumerate(sets) if s]
        if any(not c for c in choices):
            continue
        for picked in itertools.product(*choices):
            picked = list(picked)
            if not _least_bandwidth(ref, picked, [math.inf]).sum() <= B:
                continue
            lo = max(o.fixed_s for o in picked)
            t = _bisect_latency(
                lambda t: _least_bandwidth(ref, picked, t).sum(axis=0) <= B, lo, grid=1)
            best = min(best, t)
    return best


# ---------------------------------------------------------------------------------------------
# Random tiny scenario documents


def random_doc(rng, *, n_blocks=None, n_devices=None, rate_model=None, caps=None, extras=None,
               split=None, energy=None, ties=None, tight_memory=None, bandwidths=None) -> dict:
    """A valid scenario dict (SPEC 5, inline blocks) for the reference; every argument left None
    is drawn at random.

    n_blocks 1..5, n_devices 1..4 (K may be below N); rate_model fixed | shannon;
    caps: give some devices ``max_blocks`` (1..3); extras: None -> drawn among "absent",
    "zero", "equal", "random" (``extra_flops``/``extra_memory_bytes``); split: add the four
    split keys to some or all blocks, ``downlink_bps`` to some devices and a server;
    energy: None -> drawn among "none", "tight", "loose" (powers, budgets on some devices);
    ties: small integer grids so costs coincide (and params all equal, the per-layer LoRA case,
    half the time); tight_memory: device memory near block memory; bandwidths: every device a
    ``bandwidth_hz`` (P1 then uses them).
    Block costs (flops, memory_bytes) are non-decreasing in list order (depth).
    """
    def pick(value, draw):
        return draw() if value is None else value

    n_blocks = pick(n_blocks, lambda: int(rng.integers(1, 6)))
    n_devices = pick(n_devices, lambda: int(rng.integers(1, 5)))
    rate_model = pick(rate_model, lambda: "shannon" if rng.random() < 0.35 else "fixed")
    caps = pick(caps, lambda: bool(rng.random() < 0.5))
    extras = pick(extras, lambda: str(rng.choice(["absent", "zero", "equal", "random"])))
    if extras is True:
        extras = "random"
    if extras is False:
        extras = "absent"
    split = pick(split, lambda: bool(rng.random() < 0.5))
    energy = pick(energy, lambda: str(rng.choice(["none", "none", "tight", "loose"])))
    if energy is None or energy is False:
        energy = "none"
    ties = pick(ties, lambda: bool(rng.random() < 0.3))
    tight_memory = pick(tight_memory, lambda: bool(rng.random() < 0.3))
    bandwidths = pick(bandwidths, lambda: bool(rng.random() < 0.15))

    N, K = n_blocks, n_devices
    if ties:
        flops = np.sort(rng.integers(1, 4, N)).astype(float) * 1e11
        memory = np.sort(rng.integers(1, 4, N)).astype(float) * 1e9
        params = (np.full(N, 25000) if rng.random() < 0.5
                  else rng.integers(1, 3, N) * 25000)
        speed = rng.integers(1, 4, K).astype(float) * 1e11
        efficiency = rng.integers(1, 3, K).astype(float)
        device_memory = rng.integers(1 if tight_memory else 3, 5 if tight_memory else 9,
                                     K).astype(float) * 1e9
        total_bandwidth = float(rng.integers(1, 5)) * 1e6
    else:
        flops = np.sort(rng.uniform(1e11, 1e12, N))
        memory = np.sort(rng.uniform(0.5e9, 3e9, N))
        params = (np.full(N, int(rng.integers(5000, 100000))) if rng.random() < 0.4
                  else rng.integers(5000, 100000, N))
        speed = rng.uniform(1e11, 5e12, K)
        efficiency = rng.uniform(0.5, 8.0, K)
        device_memory = (rng.uniform(0.5e9, 4e9, K) if tight_memory
                         else rng.uniform(3e9, 1.2e10, K))
        total_bandwidth = float(rng.uniform(5e5, 2e7))
    if rng.random() < 0.2:  # occasionally all flops equal too
        flops = np.full(N, flops[0])

    blocks = []
    for n in range(N):
        block = {"name": f"layer.{N - 1 - n}", "flops": float(flops[n]),
                 "memory_bytes": float(memory[n]), "params": int(params[n])}
        blocks.append(block)
    if extras != "absent":
        if extras == "zero":
            dflops, dmem = np.zeros(N), np.zeros(N)
        elif extras == "equal":
            dflops = np.full(N, float(rng.uniform(0.02, 0.3)) * flops.min())
            dmem = np.full(N, float(rng.uniform(0.02, 0.3)) * memory.min())
        else:
            dflops = rng.uniform(0.0, 0.4, N) * flops
            dmem = rng.uniform(0.0, 0.4, N) * memory
        if ties and extras != "zero":
            dflops = np.round(dflops / 1e10) * 1e10
            dmem = np.round(dmem / 1e8) * 1e8
        for n, block in enumerate(blocks):
            block["extra_flops"] = float(dflops[n])
            block["extra_memory_bytes"] = float(dmem[n])

    model = {"blocks": blocks, "bits_per_param": int(rng.choice([16, 32]))}
    doc = {"name": "ref-tiny", "model": model, "devices": [],
           "channel": {"total_bandwidth_hz": total_bandwidth, "rate_model": rate_model}}
    if rate_model == "shannon" and rng.random() < 0.3:
        doc["channel"]["noise_psd_w_per_hz"] = float(DEFAULT_NOISE_PSD * rng.uniform(0.5, 2.0))
    noise = doc["channel"].get("noise_psd_w_per_hz", DEFAULT_NOISE_PSD)

    for k in range(K):
        device = {"name": f"dev-{k}", "flops_per_s": float(speed[k]),
                  "memory_bytes": float(device_memory[k])}
        if rate_model == "fixed":
            device["spectral_efficiency"] = float(efficiency[k])
        else:
            power = float(rng.uniform(0.1, 1.0))
            snr_hz = 10 ** rng.uniform(5.5, 8.5)
            device["tx_power_w"] = power
            device["channel_gain"] = float(snr_hz * noise / power)
        if bandwidths:
            device["bandwidth_hz"] = float(total_bandwidth * rng.uniform(0.1, 0.6))
        if caps and rng.random() < 0.6:
            device["max_blocks"] = int(rng.integers(1, 4))
        doc["devices"].append(device)

    if split:
        every = rng.random() < 0.6
        lucky = int(rng.integers(0, N))  # at least one block carries the split keys
        for n, block in enumerate(blocks):
            if every or n == lucky or rng.random() < 0.6:
                block["split_device_flops"] = float(flops[n] * rng.uniform(0.05, 0.6))
                block["split_server_flops"] = float(flops[n] * rng.uniform(0.3, 2.0))
                block["split_memory_bytes"] = float(memory[n] * rng.uniform(0.1, 0.8))
                block["cut_bytes"] = int(rng.integers(2000, 200000))
        lucky = int(rng.integers(0, K))  # and at least one device has a downlink
        for k, device in enumerate(doc["devices"]):
            if k == lucky or rng.random() < 0.7:
                device["downlink_bps"] = float(10 ** rng.uniform(6, 8.5))
        doc["server"] = {"flops_per_s": float(10 ** rng.uniform(12, 14))}
    elif rng.random() < 0.3:
        doc["server"] = {"flops_per_s": 1e14}

    if energy != "none":
        _add_budgets(rng, doc, tight=(energy == "tight"))
    return doc


def _add_budgets(rng, doc, *, tight):
    """Powers on every device and budgets on most: a device's energy on one random block
    (local mode, P1 bandwidth) times 0.7-1.3 (tight) or 1.5-4 (loose)."""
    for d in doc["devices"]:
        d["compute_power_w"] = float(rng.uniform(1.0, 60.0))
        d.setdefault("tx_power_w", float(rng.uniform(0.1, 1.0)))
    ref = parse(doc, max_blocks=1, modes=("local",))
    ref_loose = parse(_without_limits(doc), max_blocks=1, modes=("local",))
    for k, d in enumerate(doc["devices"]):
        if rng.random() < 0.25:
            continue
        n = int(rng.integers(0, ref.n_blocks))
        option = next(o for o in ref_loose.options if o.device == k and o.blocks == (n,))
        upload = option.bits / ref.rate(k, ref.fixed_bandwidth[k])
        energy = ref.energy(option, upload)
        factor = rng.uniform(0.7, 1.3) if tight else rng.uniform(1.5, 4.0)
        d["energy_budget_j"] = float(energy * factor)


# ---------------------------------------------------------------------------------------------
# Checking a returned result (a ``Result.to_dict()``) against the model above. Only dicts are
# read; nothing of the real cost model is used.

P1_TOL, P2_TOL, RECOMPUTE_TOL = 1e-9, 1e-6, 1e-9


def _close(a, b, rel=RECOMPUTE_TOL, what=""):
    assert a is not None, f"{what}: missing"
    assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-15), \
        f"{what}: reported {a!r}, recomputed {b!r}"


def check_result(doc, result, *, problem, max_blocks=1, modes=("local",), optimum, exact,
                 require_mode=False):
    """Assert that ``result`` (a to_dict()) is a valid allocation of ``doc`` under SPEC 6, 8, 9,
    10, consistent with every figure it reports, and consistent with the reference ``optimum``:
    equal to it (P1 1e-9, P2 1e-6 relative) for an exact method, no better than it otherwise;
    ``lower_bound_s`` no above it. Returns the recomputed round latency (None if infeasible)."""
    tol = P1_TOL if problem == "matching" else P2_TOL
    label = f"{result.get('method')} on {problem}"
    assert result["problem"] == problem, label
    status, latency = result["status"], result["round_latency_s"]
    assert status in ("optimal", "feasible", "infeasible"), (label, status)
    if latency is None:
        assert status == "infeasible", (label, status)
        assert result["assignment"] == [], label
        assert result["message"], f"{label}: infeasible without a message"
        if exact:
            assert not math.isfinite(optimum), \
                f"{label}: reported infeasible, the reference finds {optimum!r}"
        return None
    assert status != "infeasible", label
    assert math.isfinite(optimum), \
        f"{label}: returned an allocation ({latency!r}) where the reference finds none"

    ref = parse(doc, max_blocks, modes)
    names = ref.block_names
    entries = {d["name"]: d for d in result["devices"]}
    assert sorted(entries) == sorted(ref.device_names), f"{label}: devices {sorted(entries)}"
    assert len(entries) == len(result["devices"]), f"{label}: a device listed twice"
    p1_bandwidth = dict(zip(ref.device_names, map(float, ref.fixed_bandwidth)))

    seen, pairs, worst, total_bandwidth = [], set(), 0.0, 0.0
    for name, entry in entries.items():
        blocks = list(entry["blocks"])
        bandwidth = float(entry["bandwidth_hz"])
        what = f"{label}, device {name}"
        if not blocks:
            assert bandwidth == 0.0, f"{what}: bandwidth {bandwidth} without blocks"
            continue
        assert all(b in names for b in blocks), f"{what}: unknown blocks {blocks}"
        index = [names.index(b) for b in blocks]
        assert index == sorted(index), f"{what}: blocks {blocks} not in depth order"
        seen += blocks
        pairs |= {(b, name) for b in blocks}
        if require_mode:
            assert "mode" in entry, f"{what}: no mode"
        mode = entry.get("mode") or "local"
        assert mode in modes, f"{what}: mode {mode!r} not among {modes}"
        costs = device_costs(doc, name, blocks, mode, bandwidth, max_blocks)
        assert len(blocks) <= costs["cap"], f"{what}: {len(blocks)} blocks > cap {costs['cap']}"
        assert costs["memory_bytes"] <= costs["memory_limit"], \
            f"{what}: memory {costs['memory_bytes']} > {costs['memory_limit']}"
        assert costs["allowed"], f"{what}: {blocks} in {mode} mode is not allowed"
        assert bandwidth > 0, f"{what}: no bandwidth"
        if problem == "matching":
            _close(bandwidth, p1_bandwidth[name], 1e-12, f"{what} P1 bandwidth")
        for key in ("compute_s", "upload_s", "latency_s", "memory_bytes"):
            _close(entry[key], costs[key], what=f"{what} {key}")
        if mode == "split":
            assert len(blocks) == 1, f"{what}: split mode with {blocks}"
            _close(entry.get("server_s"), costs["server_s"], what=f"{what} server_s")
            _close(entry.get("downlink_s"), costs["downlink_s"], what=f"{what} downlink_s")
        if costs["energy_j"] is not None:
            _close(entry.get("energy_j"), costs["energy_j"], what=f"{what} energy_j")
            if costs["budget_j"] is not None:
                assert costs["energy_j"] <= costs["budget_j"] * (1 + RECOMPUTE_TOL), \
                    f"{what}: energy {costs['energy_j']} > budget {costs['budget_j']}"
        worst = max(worst, costs["latency_s"])
        total_bandwidth += bandwidth
    assert sorted(seen) == sorted(names), f"{label}: blocks not partitioned: {seen}"
    assert {(a["block"], a["device"]) for a in result["assignment"]} == pairs, \
        f"{label}: assignment disagrees with devices"
    assert len(result["assignment"]) == len(names), label
    _close(latency, worst, what=f"{label} round_latency_s")
    if problem == "jbba":
        assert total_bandwidth <= ref.total_bandwidth * (1 + RECOMPUTE_TOL), \
            f"{label}: bandwidth {total_bandwidth} > B = {ref.total_bandwidth}"
    if exact:
        assert status == "optimal", f"{label}: status {status}"
        assert math.isclose(latency, optimum, rel_tol=tol), \
            f"{label}: {latency!r}, reference optimum {optimum!r}"
    else:
        assert latency >= optimum * (1 - P1_TOL), \
            f"{label}: {latency!r} beats the reference optimum {optimum!r}"
    bound = result.get("lower_bound_s")
    if bound is not None:
        assert bound <= optimum * (1 + P1_TOL), \
            f"{label}: lower bound {bound!r} above the optimum {optimum!r}"
    return worst


def solve_every_method(doc, problem, *, skip=("centralized",), slow=(), include_slow=True,
                       **options):
    """Run every registered method of ``problem`` through ``lola.solve`` (the public API).

    Returns (solved, refused): {name: (result dict, exact)} and {name: message} for those that
    raised ``solvers.SolverInputError``. ``slow`` methods run only when ``include_slow``."""
    import lola
    import solvers

    solved, refused = {}, {}
    for method in solvers.methods_for(problem):
        if method.name in skip or (method.name in slow and not include_slow):
            continue
        try:
            result = lola.solve(doc, problem=problem, method=method.name, **options)
        except solvers.SolverInputError as error:
            refused[method.name] = str(error)
            continue
        except solvers.SolverFailure as error:
            # a heuristic that finds nothing says so; an exact method may not
            assert not method.exact, f"{method.name} failed: {error}"
            refused[method.name] = str(error)
            continue
        solved[method.name] = (result.to_dict(), bool(method.exact))
    return solved, refused


def check_refusals(refused, handlers):
    """Every refusal message names at least one method that handled the instance."""
    import re

    for name, message in refused.items():
        assert handlers, f"{name} refused and no method handles the instance: {message}"
        named = [h for h in handlers if re.search(rf"(?<![\w-]){re.escape(h)}(?![\w-])", message)]
        assert named, f"{name} refused without naming a method that handles it: {message!r}"


def run_lola(args):
    """``lola ARGS`` in a subprocess (the installed command, else ``python -m lola.cli``)."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("lola")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "lola.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=120)


def check_cli_refusals(path, problem, refused, handlers, options):
    """Every method in ``refused``, run as ``lola solve PATH --problem P --method M OPTIONS``,
    exits 2 with one line on stderr, no traceback, naming a method in ``handlers``."""
    for method in refused:
        done = run_lola(["solve", str(path), "--problem", problem, "--method", method,
                         *options, "--json"])
        assert done.returncode == 2, (method, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        check_refusals({method: lines[0]}, list(handlers))
