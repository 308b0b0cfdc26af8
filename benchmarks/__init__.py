"""Benchmark gradrepl against anchors measured in the same run.

Usage:
    scripts/bench [--rounds N] [--quick] [--only NAME] [--out PATH]
    python -m benchmarks ...   (the same, without the bootstrap)

Every figure (the median of its samples) is printed beside its anchor, measured in this
same run on this machine, each with the min-max of its samples, the ratio, the target and
PASS/MISS (or "info" for rows without a target). All
figures, raw samples included, go to bench-results.json at the repo root (or --out).
This is a benchmark, not a test: a MISS does not change the exit status; a row that
could not be measured does (exit 1).

Rows
    replay-seed            `gradrepl replay examples/seed_autograd.py` (stdout to /dev/null)
                           vs `python flat.py`, the seed's code cells joined into one file,
                           same interpreter, cwd examples/. Paired runs, the order
                           alternating per round; ratio = median of the per-round ratios.
                           Target: ratio <= 1.05.
    replay-seed-nbconvert  `python -m nbconvert --execute --to notebook` on the same cells
                           as an .ipynb (kernel: this interpreter, through a private
                           kernelspec on JUPYTER_PATH) vs the same flat.py. Info (~2x).
    replay-vs-nbconvert    gradrepl replay vs that nbconvert run. Target: ratio < 1.
    replay-examples-vs-nbconvert  `gradrepl replay --keep-going` of each script in examples/ in
                           turn vs one `nbconvert --execute --allow-errors` of them all as
                           notebooks. At most 2 rounds. Target: ratio <= 0.8.
    roundtrip-10/-1000     a trivial cell ("a = 1") in one warm gradrepl KernelSession with
                           N named tensors in the namespace (the probe's report must list
                           all N), vs the same cell in a plain ipykernel (no probe, same
                           interpreter, same transport and history setting, same N
                           tensors), timed until status idle and the execute_reply.
                           Interleaved; medians. Target: ratio <= 1.2 / <= 2.
    snapshot-1e8           snapshot.snapshot() of a namespace holding one 1e8-element tensor,
                           in this process with the cyclic collector off (as the probe makes
                           its report), vs torch.Tensor.__repr__ of that tensor.
                           Target: the slowest sample <= 2 ms.
    describe-1e8           values.describe_tensor of the 1e8 tensor vs of a 4x4 tensor. Info.
    describe-1e8-vs-repr   values.describe_tensor of the 1e8 tensor vs its repr. Info.
    app-first-frame        launch to first frame of `gradrepl` (no script) on a 120x40 pty,
                           until its status line ("kernel") is drawn, vs a bare Textual
                           app (one Static "hello"), same interpreter. When the footer's
                           keys ("Quit") follow is kept in the JSON. Both quit with
                           ctrl+q. Alternating; medians.
                           Target: <= 400 ms.
    backward-log-mlp       a 4-layer MLP training step (batch 256) with every backward call
                           traced (--node-grads off: the log's own cost) vs the same step
                           untraced, in this process. Target: <= 1.1x.
    node-grads-chain       backward through a 1,000-node chain of scalar multiplies, traced with
                           --node-grads on vs traced with it off, in this process. Target: <= 2x.
    node-grads-mlp         the backward-log-mlp step (no optimizer step) with --node-grads auto vs
                           off: exact stats (norm, min, max) of each of its 19 gradients, two
                           passes over 65,536 floats each, on a 2.4 ms step. Target: <= 2.5x
                           (under 3 ms added, paid by a cell's first 5 calls only).
    nan-check-mlp          an MLP training step (4 layers, batch 256, SGD) as a cell runs it under
                           --nan-check (each op's result checked, node gradients recorded, events
                           rendered) vs the same step with no gradrepl, in this process. Target: <= 1.5x.
    nan-check-vs-anomaly   a 400-op chain of multiplies and its backward under --nan-check vs under
                           torch.autograd.detect_anomaly(check_nan=True), which checks backward
                           only. Target: <= 0.7x.
    backward-log-chain     backward through a 10,000-node chain, traced vs untraced.
                           Target: <= 1.5x.
    backward-log-loop      a cell training a small MLP (784-128-128-10, batch 64, SGD) for 1,000
                           steps (zero_grad, loss.backward(), step), traced as a cell is (the
                           first 50 calls in full, the rest in brief, the events rendered) vs
                           the same cell untraced, in this process. Target: <= 1.3x.
    backward-log-loop-tiny the same with an 8-32-32-1 MLP, batch 32: a step of 0.3 ms, all Python
                           and dispatch, the dearest case for the tracer. Info.
    app-first-frame-over-bare  the same, as gradrepl minus the bare app per round.
                           Target: <= 50 ms.
    app-memory             VmRSS of the gradrepl UI process (not its kernel) once
                           `gradrepl examples/seed_autograd.py` shows "Resumed", vs the
                           bare Textual app's after its first frame. Target: <= 80 MB.
    app-memory-1000-cells  the same once a 1,000-cell script (a tensor and a printed line each)
                           is resumed, vs the seed resumed. At most 3 rounds. Target: <= 150 MB.
    app-scroll-1000-cells  then PageUp in the input (it scrolls the transcript), from the key
                           written to the pty until the cells above are drawn, vs the same keys
                           in a 100-cell session. Target: <= 50 ms.
    output-10mb-first-line a cell printing 200,000 lines (10.2 MB) pasted into a fresh app on a
                           pty and run with Ctrl+R, until its first line is drawn, vs the same
                           cell printing one line, same app. Target: <= anchor + 250 ms
                           (ipykernel sends a stream 0.2 s after its first print, and a frame).
    app-panes-latency      in-process run_test: app.panes_updated, from a cell's last kernel
                           event to the refresh after every pane was updated, for small
                           cells typed into the input, vs the same cells' round trip on a
                           bare KernelSession. Interleaved; medians (max in the JSON).
                           Target: < 50 ms.
    interrupt-python       a running `while True: pass` cell interrupted (KernelSession.interrupt)
                           0.2 s after it printed that it started, until the cell ends with
                           KeyboardInterrupt, vs the same on a plain ipykernel (jupyter_client's
                           interrupt_kernel). Alternating; medians. Target: < 1000 ms for the
                           slowest sample.
    interrupt-torch        the same with a loop of 300x300 matmuls and tanh. Target: the same,
                           and the median <= plain ipykernel's + 50 ms.
    app-key-latency        in-process run_test: from pilot.press("a") until the input has
                           handled the key, while `time.sleep(5)` runs in the kernel, vs
                           the same presses with the kernel idle. Target: < 50 ms.
    fold-expand-1e5        in-process run_test: opening the fold of a 100,000-line output until
                           it has drawn its lines, vs the same app drawing a 12-line output.
                           Target: < 1000 ms.
    fold-expand-key        from opening that fold and pressing "a" at once until the input has
                           handled the key, vs the same key with nothing opening. Target: < 50 ms.
    fold-expand-first-key  a fresh app per round: `for i in range(100000): print(i)` run in its
                           kernel, its fold opened the first time and "a" pressed at once, until
                           the input has handled the key, vs the next key. Target: < 50 ms.
    app-model-inspector    in-process run_test: a training step's cell with a 300-parameter-tensor
                           model in the namespace (all grads change), from Ctrl+R until every
                           pane, the inspector included, is drawn, vs the same with 10 plain
                           tensors, in a fresh app after it. Medians. Target: <= 100 ms.
    app-model-100-layers   the same with a 100-layer model of 2,000 parameter tensors (each layer
                           five Linear(16, 16) + LayerNorm(16)); a training step in extra.
                           Target: <= 250 ms.
    report-wire-100-layers the JSON size of the probe's report of that step (all 2,000 in it, 557
                           with new values: the rest have grads of nearly 0) vs
                           of a cell changing no tensor (`a = 1`). Target: <= 512 B a changed
                           tensor, <= 32 B an unchanged one.
    check-vs-nbval         `gradrepl check .` on the examples/ lessons written as notebooks with
                           their outputs (replay --to-notebook), vs `pytest --nbval .` on the same
                           notebooks (nbval comes with the test extra), same interpreter and
                           kernel. Alternating, at most 3 rounds; median of per-round ratios.
                           Target: ratio <= 0.7.
    check-jobs-2           `gradrepl check -j 2 .` vs `-j 1` on those notebooks. Target: <= 0.9
                           (-j 1 already starts the next lesson's kernel, and its torch import
                           when that is its first statement, while a lesson runs: on 2 cores
                           -j 2 wins only the cells' own time).
    server-roundtrip       a trivial cell (`1 + 1`) through a Jupyter Server started on 127.0.0.1
                           (`--server`: REST, then the kernel's websocket) vs the same cell in a
                           kernel gradrepl starts; alternating, medians. Target: <= 2x + 5 ms.
    replay-seed-server     `gradrepl replay --server URL` of the seed (a kernel started on that
                           server and shut down after) vs `gradrepl replay`; alternating rounds,
                           median of per-round ratios. Target: ratio <= 1.3.
    replay-seed-sandbox    `gradrepl replay --sandbox` of the seed (best-effort as root, which
                           Linux exempts from the process limit) vs `gradrepl replay`;
                           alternating rounds, median of per-round ratios. Target: ratio <= 1.05.
    graph-view-1e4         in-process run_test, the app's own kernel: the graph screen of a
                           10,001-node recurrence (h = h * 1.01 + 0.5, 5,000 steps) from
                           app.show_graph until drawn with its graph (kernel walk, folding,
                           comm, tree), vs the same screen for the seed's z (3 nodes), same
                           app, alternating; medians. Target: <= 300 ms.
    graph-text-1e4         the same graph asked on a bare KernelSession, as `gradrepl graph`
                           does, and its text written out, vs the seed's z. Target: <= 1000 ms.

--rounds N sets the paired replay rounds and the app launches (default 5); the round
trips take 6*N samples and the in-process timings 4*N (key presses: at most 30).
--quick is --rounds 2. Every kernel the bench starts carries GRADREPL_BENCH_RUN in its
environment; any still running after its app ended is killed, and said so. Every row, each
app launch and every kernel they start keep their state and config (XDG_STATE_HOME,
XDG_CONFIG_HOME, GRADREPL_HISTORY, GRADREPL_JOURNAL_DIR, IPython and Jupyter dirs) in a
temporary folder of their own (benchmarks/isolation.py): the user's are never touched.

Modules: replay.py (replay rows), kernel.py with plain_kernel.py (round trips, interrupts),
probe.py (snapshot, describe, backward log), app_start.py (first frame, memory; on a pty
through terminal.py, which the tests use too), app_latency.py (panes, keys; run_test),
fold_expand.py (the fold rows; run_test), graph_scale.py (the graph rows), model_inspector.py (the inspector with a model; run_test),
session_scale.py (a 1,000-cell session, a 10 MB output; on a pty),
cli.py and report.py (the table and bench-results.json).
"""
