"""Measurements behind `bin/l2l_benchmark.py`: each module measures one thing in this process.

The binary runs every case in a fresh process (so one case's peak memory or allocator
state never leaks into the next) and gathers their JSON into benchmarks/results.json.
"""
