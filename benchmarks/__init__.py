"""Speed, memory and scale measurements of l2l_tf (a source checkout's, not part of the package).

harness/      the measurements `bin/l2l_benchmark.py` (and `l2l-benchmark` in an editable install)
              runs, one fresh process per case; cli.py is that binary
experiments/  one-off experiments RESULTS.md quotes (what was tried and not kept)
results.json, results.md   the last full run, as RESULTS.md's "Speed, memory and scale" reports it
"""
