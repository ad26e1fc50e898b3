"""The benchmark suite's plumbing: stage markers, resume, the report (stages stubbed out; the
real measurements live in benchmarks/, not in timed tests)."""
import json

import benchmarks.__main__ as suite
from benchmarks import (crunch_scaling, exact_scaling, jbba_quality, jbba_scaling, llm_scale,
                        pareto_grid, rounds, several_blocks, split_mode)

CRUNCH = {"milp_over_crunch_K100": 6000.0, "bottleneck_over_crunch_K100": 40.0,
          "bottleneck_over_crunch_K3000_N300": 500.0, "crunch_largest_K": 10**6,
          "crunch_largest_s": 0.05, "crunch_peak_mib": {"1000000": 47.0}, "rows": []}
SCALING = {"exact_s_K200": 0.2, "milp_over_exact_K50": 200.0, "dual_ascent_s_K200": 1.5,
           "rows": [{"K": 10, "method": "exact", "median_s": 0.01}]}
STATS = {"mean": 0.1, "median": 0.1, "p95": 0.2, "max": 0.3}
QUALITY = {"instances": 4, "feasible": 4, "dual_ascent_gap": STATS,
           "dual_ascent_plain_gap": STATS, "dual_bound_ratio": STATS, "iterations": STATS,
           "iterations_plain": STATS,
           "reduction": {"random": {"exact": STATS, "dual_ascent": STATS}}}
EXACT = {"exact_s": {"10000x100": 0.05}, "peak_mib": {"10000x100": 30.0},
         "dual_ascent_s_20": 0.03, "dense_over_exact_1e4": 150.0, "rows": []}
ROUNDS = {"rounds": 10, "devices": 100, "wall_s": 1.0, "exact_solve_median_s": 0.002,
          "static_loss_percent": 7.0, "static_total_time_s": 10.7, "exact_total_time_s": 10.0,
          "static_infeasible_rounds": 0, "static_median_loss_percent": 3.0,
          "static_worst_round_s": 2.0, "exact_worst_round_s": 1.0}
PARETO = {"grids": {"roberta-base": {
    "configurations": 72, "devices": 20, "seconds": 0.2, "target_s": 5, "front_points": 17,
    "grid_dominated_picks": 7, "grid_picks": 15, "grid_front_missed": 9,
    "knee": {"layers": 6, "rank": 32, "round_latency_s": 0.5}}}}
GAP = {"count": 3, "median": 0.004, "max": 0.02}
SEVERAL = {"p1_milp_over_crunch": {"x3": {"median": 1500.0, "min": 900.0, "instances": 5,
                                          "crunch_median_s": 0.001, "milp_median_s": 1.5}},
           "p1_agree": True, "p2_exact_s": {"median": 0.2, "max": 0.4},
           "p2_checks": [{"seed": 0, "milp_status": "feasible", "agree": True,
                          "gap_to_milp": 0.0}], "p2_milp_time_limit_s": 60.0,
           "packing_K32_N96": {"drawn": {"median_s": 0.04, "max_s": 0.05, "infeasible": 0,
                                         "instances": 10, "gap_to_own_bound": GAP,
                                         "gap_to_exact": GAP, "exact_median_s": 4.0,
                                         "exact_max_s": 7.0}},
           "packing_to_exact": {"drawn K=12 N=48": {"gap": GAP, "packing_infeasible": 0,
                                                    "exact_median_s": 1.0}}, "rows": []}
LLM = {"cases": [{"K": 64, "max_blocks": 5, "seed": 1, "problem": "matching", "exact_s": 0.6,
                   "target_s": 1.0, "optimum_s": 4.7, "packing_s": 0.2, "packing_gap": 0.03,
                   "path_status": "stopped", "path_s": 120.0, "path_cap_s": 120.0,
                   "path_over_exact": 200.0, "agree": True},
                  {"K": 64, "max_blocks": 5, "seed": 1, "problem": "jbba", "exact_s": 0.4,
                   "target_s": 1.0, "optimum_s": 4.1, "packing_s": 0.15, "packing_gap": 0.026,
                   "path_status": "optimal", "path_s": 28.0, "path_cap_s": 120.0,
                   "path_over_exact": 70.0, "agree": True}],
       "path_cap_s": 120.0, "rows": []}
SPLIT = {"share": {"default x1": {"instances": 5, "split_wins": 0, "median_gain": 0.0},
                   "phones x100": {"instances": 5, "split_wins": 4, "median_gain": 0.02}},
         "timing": {"local": {"median_s": 0.01, "max_s": 0.02},
                    "local,split": {"median_s": 0.05, "max_s": 0.08}}}
FIGURES = {"figures": ["a.png"], "seeds": 2, "dual_ascent_reduction_K20": {"random": 0.5}}


def test_stages_write_markers_and_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    calls = []

    def stub(name, value):
        def run(*args, **kwargs):
            calls.append(name)
            return value
        return run

    monkeypatch.setattr(crunch_scaling, "run", stub("crunch", CRUNCH))
    monkeypatch.setattr(jbba_scaling, "run", stub("scaling", SCALING))
    monkeypatch.setattr(jbba_quality, "run", stub("quality", QUALITY))
    monkeypatch.setattr(exact_scaling, "run", stub("exact", EXACT))
    monkeypatch.setattr(rounds, "run", stub("rounds", ROUNDS))
    monkeypatch.setattr(pareto_grid, "run", stub("pareto", PARETO))
    monkeypatch.setattr(several_blocks, "run", stub("several", SEVERAL))
    monkeypatch.setattr(llm_scale, "run", stub("llm", LLM))
    monkeypatch.setattr(split_mode, "run", stub("split", SPLIT))
    monkeypatch.setattr(suite, "figures_stage", stub("figures", FIGURES))
    suite.main(["--out", str(tmp_path), "--quick"])
    assert calls == ["crunch", "scaling", "exact", "quality", "rounds", "pareto", "several",
                     "llm", "split", "figures"]
    for stage in suite.STAGES:
        assert json.loads((tmp_path / f"stage-{stage}.json").read_text())
    report = (tmp_path / "report.md").read_text()
    assert "6000x faster" in report and "200x slower" in report
    assert "150x (target >= 20x)" in report and "costs 7.0 % more total time" in report
    assert "7 of 15 dominated" in report
    assert "dual ascent's mean round latency is 50.0 % below random's" in report
    assert "memory x3: crunch is 1500x faster than milp" in report
    assert "packing / exact - 1 median 0.40 %, max 2.00 % (target median < 1 %; exact 4.0 s" \
        in report
    assert "packing / exact - 1, memory drawn K=12 N=48: median 0.40 %, max 2.00 %" in report
    assert "split mode wins on 4 of 5 instances (phones x100 downlink; median gain 2.00 %)" \
        in report
    assert ("K = 64, max_blocks 5, seed 1: crunch (P1) 0.600 s (target < 1 s); path MILP "
            "stopped at its 120 s cap (>= 200x slower), agrees: yes; packing 200 ms, 3.00 % "
            "above the optimum") in report
    assert "exact (P2) 0.400 s (target < 1 s); path MILP 28.0 s (70x slower)" in report

    (tmp_path / "stage-figures.json").unlink()  # as if interrupted during the last stage
    suite.main(["--out", str(tmp_path)])
    assert calls[10:] == ["figures"]
    assert "finished earlier" in capsys.readouterr().out
    suite.main(["--out", str(tmp_path), "--force"])
    assert calls[11:] == ["crunch", "scaling", "exact", "quality", "rounds", "pareto",
                          "several", "llm", "split", "figures"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
