"""Process machinery with no ML in it: atomic writes, append-only JSONL logs, background jobs, child processes that
run a named job (:mod:`covidqa.jobs`) and exit, and the gate that keeps torch out of serving processes."""
