import copy
import json

import pytest

GOOD = {
    "name": "tiny",
    "model": {"blocks": [
        {"name": "layer.1", "flops": 2.0e11, "memory_bytes": 1.0e9, "params": 24576},
        {"name": "layer.0", "flops": 2.3e11, "memory_bytes": 1.2e9, "params": 24576}],
        "bits_per_param": 32, "batch_bytes": 8192},
    "devices": [
        {"name": "a", "flops_per_s": 1e12, "memory_bytes": 4e9, "spectral_efficiency": 5.0},
        {"name": "b", "flops_per_s": 2e12, "memory_bytes": 1.1e9, "spectral_efficiency": 2.0},
        {"name": "c", "flops_per_s": 5e11, "memory_bytes": 8e9, "spectral_efficiency": 8.0}],
    "channel": {"total_bandwidth_hz": 1e7, "rate_model": "fixed"},
    "server": {"flops_per_s": 1e14},
}


@pytest.fixture
def good_scenario():
    return copy.deepcopy(GOOD)


@pytest.fixture
def write_json(tmp_path):
    def write(document, name="scenario.json"):
        path = tmp_path / name
        path.write_text(json.dumps(document))
        return path
    return write


@pytest.fixture
def no_open_figures():
    """Every figure closed before and after the test (figure tests use it for the module)."""
    import matplotlib.pyplot as plt

    plt.close("all")
    yield
    plt.close("all")
