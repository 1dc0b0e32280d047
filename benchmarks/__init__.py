"""Clipwire's benchmarks: one script per question, each writing JSON to results/."""
