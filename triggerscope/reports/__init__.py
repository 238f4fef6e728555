"""What a person reads: the benchmark's table and plots, and the HTML audit report of a run."""
