"""LoLa's benchmarks: each script answers one question and writes CSV into ``results/``."""
