# COVID-19 QA as a Jina Flow. `make serve` and `make test` work on a fresh machine (Python 3.11, 2 CPU cores).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
# Data: this environment keeps it in ../shared/data; elsewhere point COVIDQA_DATA at your copy.
COVIDQA_DATA ?= $(abspath ../shared/data)
export COVIDQA_DATA
# Tests whose data file is missing are skipped (naming the file); with COVIDQA_REQUIRE_DATA=1 (.ci/run sets it) they
# fail instead: `make test COVIDQA_REQUIRE_DATA=1` checks that nothing was skipped for want of data.
export COVIDQA_REQUIRE_DATA
FAQ_CSV ?= $(if $(wildcard $(COVIDQA_DATA)/covid_faq_deepset/faq_covidbert.csv),$(COVIDQA_DATA)/covid_faq_deepset/faq_covidbert.csv,)
# One home for models, index, labels and checkpoints (covidqa.paths.service_home reads the same variable).
COVIDQA_HOME ?= $(abspath workspace)
export COVIDQA_HOME

.PHONY: serve test test-fast test-compose compose-file lint venv reader reader-pretrain reader-no-answer reader-ship reader-calibrate embedder embedder-ship browser bench bench-reader bench-abstain \
	bench-articles bench-cache bench-corpus bench-retrieval bench-curve bench-feedback bench-scale bench-scale-flow soak soak-kill clean

.venv/.installed: requirements.txt pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q torch==2.13.0          # first: the CPU wheel, so nothing pulls in CUDA
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .   # this project: covidqa, toydata, executors, client
	touch $@

venv: .venv/.installed

# Serves the reader trained into $(COVIDQA_HOME)/models/reader if there is one, else the reader shipped in
# models/reader/ (checksum verified, unpacked once): nothing is trained.
serve: .venv/.installed
	$(PY) -m client.serve $(if $(FAQ_CSV),--faq $(FAQ_CSV),)

# The shipped reader's recipe (benchmarks/READER_RESULTS.md), from $(COVIDQA_DATA):
# stage 1, SQuAD v1.1 train + SQuADShifts (0.9 of an epoch, 3 hours on 2 cores; checkpoints every 5 minutes: run it
# again after a stop and it continues where it stopped, so it can be done in pieces) ...
reader-pretrain: .venv/.installed
	$(PY) -m covidqa.qa.pretrain --data-dir $(COVIDQA_DATA)

# ... stage 2, COVID-QA (the default recipe from stage 1's reader, 9 minutes) into $(COVIDQA_HOME)/models/reader ...
reader: reader-pretrain
	$(PY) -m covidqa.qa default --data-dir $(COVIDQA_DATA) --force --start-from $(COVIDQA_HOME)/models/reader-pretrained

# ... stage 3, "no answer": SQuAD 2.0 dev's training part + COVID-QA questions against other articles (13 minutes) ...
reader-no-answer: .venv/.installed
	$(PY) -m covidqa.qa no-answer --data-dir $(COVIDQA_DATA) --start-from $(COVIDQA_HOME)/models/reader \
	    --output $(COVIDQA_HOME)/models/reader-no-answer

# ... and packed into the one committed file (fp16 safetensors + sha256; update models/reader/MODEL_CARD.md).
reader-ship: .venv/.installed
	$(PY) -m covidqa.qa ship --model $(COVIDQA_HOME)/models/reader-no-answer

# ... and its confidence fitted on held-out questions (models/reader/calibration.json, the diagram in docs/; ~6 min)
reader-calibrate: .venv/.installed
	$(PY) -m covidqa.qa calibrate --data-dir $(COVIDQA_DATA) --plot docs/reliability.png

# The shipped [CLS] embedder (embedder version 0): all-MiniLM-L6-v2's [CLS] taught to point where its mean pooling
# does, on SQuAD/SQuADShifts/COVID-QA train questions and passages (45 minutes on 2 cores), then a contrastive step on
# their (question, passage) pairs (25 minutes); each resumable like the reader (models/embedder/MODEL_CARD.md) ...
embedder: .venv/.installed
	$(PY) -m covidqa.feedback.distill --data-dir $(COVIDQA_DATA) --max-minutes 45
	$(PY) -m covidqa.feedback.distill contrast --data-dir $(COVIDQA_DATA)

# ... and packed into the one committed file (fp16 safetensors + sha256; update models/embedder/MODEL_CARD.md).
embedder-ship: .venv/.installed
	$(PY) -m covidqa.feedback.distill ship --model $(COVIDQA_HOME)/models/embedder-contrasted

# Debian's chromium for the labeler browser test (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The whole suite (~5 min on 2 cores) after the linter and the type checker
test: .venv/.installed browser lint
	$(PY) -m pytest tests -q

# What a developer runs while editing: ruff + mypy + the unit tests that neither train nor read whole data sets (< 1 min)
test-fast: .venv/.installed lint
	$(PY) -m pytest tests -q -m "unit and not slow"

# The docker-compose.yml stack with rootful Podman (run as root; installs podman & co. from apt when missing): build,
# up on free 127.0.0.1 ports, index/search/answer/feedback over HTTP and gRPC, restart an indexer shard and the
# finetuner, down -v. Not part of `make test`; .ci/run runs it after. 10 min the first time, 3 min with the images cached.
test-compose: .venv/.installed
	$(PY) -m tests.compose.compose_stack

# docker-compose.yml from flow.yml, the indexer split over two shards with the merger after it (README, Sharding)
compose-file: .venv/.installed
	$(PY) -m client.compose --index-shards 2 > docker-compose.yml

lint: .venv/.installed
	.venv/bin/ruff check .
	.venv/bin/mypy

bench: .venv/.installed
	$(PY) benchmarks/bench_speed.py

bench-reader: .venv/.installed
	$(PY) benchmarks/bench_reader.py --squad-dev 0

# "No answer" on held-out data: SQuAD 2.0, COVID-QA paragraphs own/other, covered vs uncovered FAQ questions through
# the Flow; calibration error (benchmarks/TRUST_RESULTS.md; ~10 min)
bench-abstain: .venv/.installed
	$(PY) benchmarks/bench_abstain.py

# Answers from the COVID-QA dev articles: the Flow (dense retrieval + reader) beside BM25 + the same reader
bench-articles: .venv/.installed
	$(PY) benchmarks/bench_articles.py

# Every COVID-QA article and the FAQ in one Flow, asked the dev/test article questions and reworded FAQ questions:
# recall of the right passage, answer EM/F1, latency, indexing throughput (~15 min)
bench-corpus: .venv/.installed
	$(PY) benchmarks/bench_corpus.py

# The answer cache's hit rate on community questions asked with a Zipf-like repetition, through the Flow (~3 min)
bench-cache: .venv/.installed
	$(PY) benchmarks/bench_cache.py

# The indexer's rankings (dense, BM25, hybrid) on five retrieval tasks, in process (~3 min)
bench-retrieval: .venv/.installed
	$(PY) benchmarks/bench_retrieval.py

# Reader F1 against the number of training questions (4 trainings of 9 minutes + evaluation, ~55 min)
bench-curve: .venv/.installed
	$(PY) benchmarks/learning_curve.py

bench-feedback: .venv/.installed
	$(PY) benchmarks/bench_feedback.py

# The indexer's store at 10k / 100k / 1M synthetic 384-d documents (HNSW; 1 and 2 shards): throughput, disk, memory,
# restart, top-10 latency, recall@10 vs exact, upsert-64 -> benchmarks/out/bench_scale.json, docs/bench_scale.png,
# benchmarks/SCALE_RESULTS.md. Stores are kept in /tmp/bench_scale and reused (the 1M build takes ~30 min on 2 cores)
bench-scale: .venv/.installed
	$(PY) benchmarks/bench_scale.py

# The same 1M synthetic documents behind the whole Flow: ready time, /search top-10 p50/p99 through the gateway,
# QPS at 4 clients, memory -> benchmarks/out/bench_scale_flow.json (store built once in /tmp/bench_scale_flow)
bench-scale-flow: .venv/.installed
	$(PY) benchmarks/bench_scale_flow.py

# Soak test with a fuzzer (not part of `make test`): 16 clients for 5 minutes of real + malformed requests over gRPC and
# HTTP, then checks that no acknowledged write is lost (also after a restart) -> benchmarks/out/soak.json, docs/soak.png
soak: .venv/.installed
	$(PY) benchmarks/soak.py

# The same with the indexer at replicas: 2, the first replica killed with SIGKILL a minute into the load
soak-kill: .venv/.installed
	$(PY) benchmarks/soak.py --replicas 2 --kill-after 60

clean:
	rm -rf workspace benchmarks/out
