"""tinymeta's benchmarks: a folder of scripts in the source checkout, not part of the
installed package. Run ``python benchmarks/run.py --help``; README.md here lists the
workloads, their goals and the commands."""
