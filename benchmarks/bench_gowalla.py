"""Speed benchmark on real Gowalla: ours vs PyG's LightGCN vs the sparse-product floor.

    LIGHTGCN_DATA_ROOT=../shared/datasets python benchmarks/bench_gowalla.py [--quick] [--json]
        [--device cpu|cuda] [--data-root DIR]

Everything runs in ONE process, so the ratios compare like with like. Times are medians over
repeated runs; memory is the peak resident set (CPU, reset between phases through
/proc/self/clear_refs) or the peak CUDA allocation (GPU) of each phase, in MiB above the phase's
starting point. Progress goes to stderr; the table (or, with --json, one JSON object) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch

from lightgcn_pyg.data import load_dataset
from lightgcn_pyg.device import resolve_device
from lightgcn_pyg.evaluation import Evaluator
from lightgcn_pyg.training import TrainConfig, Trainer

DIM, LAYERS, BATCH = 64, 3, 2048


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Peak memory of a phase above its starting point (CPU: VmHWM after a reset; CUDA: allocator)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets the peak RSS counter (Linux >= 4.0)
            except OSError:
                pass
            self.start = _rss_mb("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20 - self.start
        else:
            self.peak_mb = _rss_mb("VmHWM") - self.start


def median_time(
    fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1
) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times: List[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _tensor_mb(tensors) -> float:
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total / 2**20


def model_state_mb(trainer: Trainer) -> float:
    """Parameters, buffers (the graph) and the normalised adjacency, exact tensor sizes."""
    model, adj = trainer.model, trainer.model.adjacency()
    parts = list(model.state_dict().values())
    for op in (adj._user_op, adj._item_op):
        for m in (op.fwd, op.bwd):
            parts += [m.rowptr, m.col, m.value]
    parts += [t for t in (adj._t_to_r, adj._r_to_t) if t is not None]
    return _tensor_mb(parts)


def memory_probe(data_root) -> None:
    """Run in a fresh process: peak memory of training steps (model, adjacency, gradients, Adam
    state and every per-step buffer), printed as JSON. glibc is told to map every block above
    64 KiB separately, so the resident set follows live memory and its peak is the real peak."""
    from lightgcn_pyg.loss import bpr_loss, embedding_l2_loss
    from lightgcn_pyg.nn import LightGCN
    from lightgcn_pyg.sampling import BPRSampler
    from lightgcn_pyg.training.trainer import make_adam

    data = load_dataset("gowalla", root=data_root)
    sampler = BPRSampler(data.train_edge_index, data.num_users, data.num_items, batch_size=BATCH)
    src, pos, neg = (t[: 5 * BATCH].clone() for t in sampler.sample_epoch(0))
    edge_index = data.train_edge_index.clone()
    num_users, num_items = data.num_users, data.num_items
    del sampler, data
    with PeakMemory(torch.device("cpu")) as mem:
        model = LightGCN(num_users, num_items, edge_index, DIM, LAYERS, init="normal")
        optimizer = make_adam(model.parameters(), 1e-3)
        for i in range(0, 5 * BATCH, BATCH):
            u, p, n = src[i : i + BATCH], pos[i : i + BATCH], neg[i : i + BATCH]
            user, item, ego_user, ego_item = model(u, torch.cat([p, n]), return_ego=True)
            scores = (user.repeat(2, 1) * item).sum(-1)
            loss = bpr_loss(scores[:BATCH], scores[BATCH:]) + 1e-4 * embedding_l2_loss(
                ego_user, ego_item, batch_size=BATCH
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    print(json.dumps({"train_peak_mb": mem.peak_mb}))


def run_memory_probe(data_root) -> float:
    import subprocess

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    args = [sys.executable, __file__, "--memory-probe"]
    if data_root:
        args += ["--data-root", str(data_root)]
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["train_peak_mb"]


def interleaved(
    fns: Dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> Dict[str, float]:
    """Median seconds of each function, run round-robin so that machine drift hits all alike."""
    for fn in fns.values():
        fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def symmetric_csr(data, device: torch.device) -> torch.Tensor:
    """The normalised (U+I) x (U+I) adjacency D^-1/2 A D^-1/2 in torch CSR: the floor's matrix."""
    from torch_geometric.utils import to_torch_csr_tensor

    edge_index = data.homogeneous_edge_index()
    n = data.num_users + data.num_items
    deg = torch.bincount(edge_index[0], minlength=n).float()
    inv = deg.pow(-0.5)
    inv[deg == 0] = 0
    value = inv[edge_index[0]] * inv[edge_index[1]]
    return to_torch_csr_tensor(edge_index, value, size=(n, n)).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Fewer repetitions (< 3 min on 2 CPU cores)."
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(args.data_root)
        return
    try:
        device = resolve_device(args.device)
    except ValueError as error:  # e.g. --device cuda on a machine without CUDA
        parser.error(str(error))
    reps = (
        dict(step=7, floor=7, pyg_csr=3, pyg_ei=2, sample=3, eval=3)
        if args.quick
        else dict(step=21, floor=21, pyg_csr=7, pyg_ei=5, sample=7, eval=5)
    )
    if device.type == "cuda":  # GPU steps are cheap: more repetitions, same budget
        reps = {k: v * 5 for k, v in reps.items()}
    out: Dict[str, object] = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "quick": args.quick,
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)

    data = load_dataset("gowalla", root=args.data_root)
    num_users, num_items = data.num_users, data.num_items
    log(f"gowalla: {num_users} users, {num_items} items, {data.num_train} train interactions")
    memory: Dict[str, float] = {}

    # --- ours (fwd + bwd + Adam) and the floor, measured interleaved so drift hits both -------
    config = TrainConfig(
        embedding_dim=DIM,
        num_layers=LAYERS,
        batch_size=BATCH,
        device=str(device),
        progress=False,
        init="normal",
        tensorboard=False,
    )
    with PeakMemory(device) as mem:
        trainer = Trainer(data, config, log=lambda _: None)
        src, pos, neg = trainer.sampler.sample_epoch(0)
        batches = [
            (src[i : i + BATCH], pos[i : i + BATCH], neg[i : i + BATCH])
            for i in range(0, 40 * BATCH, BATCH)
        ]
    memory["train_setup"] = mem.peak_mb  # model, adjacency, sampler, evaluator, one epoch
    # The first steps allocate every per-step buffer (later steps reuse the freed memory).
    with PeakMemory(device) as mem:
        for b in batches[:3]:
            trainer.train_step(*b)
    memory["step_transient"] = mem.peak_mb
    model_mb = sum(p.numel() * p.element_size() for p in trainer.model.parameters()) / 2**20
    out["embeddings_mb"] = model_mb
    out["adam_state_mb"] = 2 * model_mb
    counter = iter(range(10**9))

    def our_step() -> None:
        trainer.train_step(*batches[next(counter) % len(batches)])

    # The floor: 2K bare products with the full symmetric adjacency in torch CSR (``A @ X``,
    # as issue #6 defines it), and the same products through the fastest call we know (int32
    # indices, ``addmm`` into one reused buffer), reported next to it as the strictest baseline.
    A = symmetric_csr(data, device)
    A32 = torch.sparse_csr_tensor(
        A.crow_indices().int(), A.col_indices().int(), A.values(), A.shape
    )
    out["adjacency_mb"] = (
        A.values().numel() * A.values().element_size()
        + A.col_indices().numel() * A.col_indices().element_size()
        + A.crow_indices().numel() * A.crow_indices().element_size()
    ) / 2**20
    X = torch.randn(num_users + num_items, DIM, device=device)
    buf = torch.empty_like(X)

    def floor_default() -> None:
        for _ in range(2 * LAYERS):
            A @ X

    def floor_fast() -> None:
        for _ in range(2 * LAYERS):
            torch.addmm(buf, A32, X, beta=0, out=buf) if device.type == "cpu" else A32 @ X

    out["model_state_mb"] = model_state_mb(trainer)
    if device.type == "cuda":
        out["train_peak_mb"] = memory["train_setup"] + memory["step_transient"]
    else:  # a fresh process where resident memory follows live memory (see memory_probe)
        out["train_peak_mb"] = run_memory_probe(args.data_root)
    with PeakMemory(device) as mem:
        times = interleaved(
            {"step": our_step, "floor": floor_fast, "floor_default": floor_default},
            reps["step"],
            device,
        )
    memory["floor"] = mem.peak_mb
    out["step_ms"] = times["step"] * 1e3
    # The floor as issue #6 defines it: 2K bare torch CSR products, called plainly.
    out["floor_ms"] = times["floor_default"] * 1e3
    out["floor_fast_ms"] = times["floor"] * 1e3
    out["one_product_ms"] = out["floor_ms"] / (2 * LAYERS)
    log(
        f"ours: step {out['step_ms']:.1f} ms; floor (2K = {2 * LAYERS} products, A @ X): "
        f"{out['floor_ms']:.1f} ms (fastest call: {out['floor_fast_ms']:.1f} ms)"
    )

    # --- PyG's LightGCN -----------------------------------------------------------------------
    from torch_geometric.nn import LightGCN as PyGLightGCN

    edge_index = data.homogeneous_edge_index().to(device)
    train_pairs = edge_index[:, edge_index[0] < edge_index[1]]
    gen = torch.Generator().manual_seed(0)

    def pyg_step(model, optimizer, adj) -> Callable[[], None]:
        def step() -> None:
            index = torch.randint(train_pairs.size(1), (BATCH,), generator=gen).to(device)
            pos_pairs = train_pairs[:, index]
            neg_items = torch.randint(num_users, num_users + num_items, (BATCH,), generator=gen)
            neg_pairs = torch.stack([pos_pairs[0], neg_items.to(device)])
            label_index = torch.cat([pos_pairs, neg_pairs], dim=1)
            optimizer.zero_grad()
            pos_rank, neg_rank = model(adj, label_index).chunk(2)
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique())
            loss.backward()
            optimizer.step()

        return step

    with PeakMemory(device) as mem:
        pyg = PyGLightGCN(num_users + num_items, DIM, LAYERS, normalize=False).to(device)
        opt = torch.optim.Adam(pyg.parameters(), lr=1e-3)
        out["pyg_csr_step_ms"] = median_time(pyg_step(pyg, opt, A), reps["pyg_csr"], device) * 1e3
    memory["pyg_csr"] = mem.peak_mb
    log(f"PyG LightGCN + normalised CSR: {out['pyg_csr_step_ms']:.1f} ms")
    with PeakMemory(device) as mem:
        pyg = PyGLightGCN(num_users + num_items, DIM, LAYERS).to(device)
        opt = torch.optim.Adam(pyg.parameters(), lr=1e-3)
        out["pyg_edge_index_step_ms"] = (
            median_time(pyg_step(pyg, opt, edge_index), reps["pyg_ei"], device) * 1e3
        )
    memory["pyg_edge_index"] = mem.peak_mb
    del pyg, opt
    log(f"PyG LightGCN + edge_index (its example): {out['pyg_edge_index_step_ms']:.1f} ms")

    # --- sampling one epoch ---------------------------------------------------------------------
    epochs = iter(range(1, 10**6))
    with PeakMemory(torch.device("cpu")) as mem:
        out["sample_epoch_s"] = median_time(
            lambda: trainer.sampler.sample_epoch(next(epochs)), reps["sample"], torch.device("cpu")
        )
    memory["sampling"] = mem.peak_mb
    log(
        f"sampling one epoch ({trainer.sampler.num_samples} triplets): {out['sample_epoch_s']:.3f} s"
    )

    # --- full epoch (sampling + every step) -----------------------------------------------------
    n_batches = len(trainer.sampler)
    out["epoch_s_estimated"] = out["sample_epoch_s"] + n_batches * out["step_ms"] / 1e3
    if not args.quick:
        t0 = time.perf_counter()
        trainer._train_epoch(bar_position=0)
        sync(device)
        out["epoch_s"] = time.perf_counter() - t0
        log(f"one full epoch: {out['epoch_s']:.1f} s")

    # --- evaluation vs the bare matmul + top-K --------------------------------------------------
    trainer.model.eval()
    user_emb, item_emb = trainer.model.embeddings()
    evaluator = Evaluator(
        data.train_edge_index, data.test_edge_index, num_users, num_items, ks=(20,)
    )
    with PeakMemory(device) as mem:
        out["eval_s"] = median_time(
            lambda: evaluator.evaluate(user_emb, item_emb), reps["eval"], device
        )
    memory["eval"] = mem.peak_mb
    eval_users = evaluator.eval_users.to(device)
    chunk = evaluator.chunk_size_for()

    def bare_eval() -> None:
        for start in range(0, eval_users.numel(), chunk):
            scores = user_emb[eval_users[start : start + chunk]] @ item_emb.t()
            scores.topk(20, dim=1)

    with PeakMemory(device) as mem:
        out["eval_floor_s"] = median_time(bare_eval, reps["eval"], device)
    memory["eval_floor"] = mem.peak_mb
    log(f"evaluation: {out['eval_s']:.2f} s; bare matmul + top-K: {out['eval_floor_s']:.2f} s")

    out["peak_rss_mb"] = _rss_mb("VmHWM") if device.type != "cuda" else max(memory.values())
    out["peak_mb"] = memory
    out["ratio_step_vs_floor"] = out["step_ms"] / out["floor_ms"]
    out["ratio_step_vs_floor_fast"] = out["step_ms"] / out["floor_fast_ms"]
    out["speedup_vs_pyg_csr"] = out["pyg_csr_step_ms"] / out["step_ms"]
    out["speedup_vs_pyg_edge_index"] = out["pyg_edge_index_step_ms"] / out["step_ms"]
    out["ratio_eval_vs_floor"] = out["eval_s"] / out["eval_floor_s"]
    out["train_memory_budget_mb"] = 2 * (
        out["adjacency_mb"] + out["embeddings_mb"] + out["adam_state_mb"]
    )
    out["ratio_train_memory_vs_budget"] = out["train_peak_mb"] / out["train_memory_budget_mb"]

    if args.json:
        print(json.dumps(out))
        return
    rows = [
        (
            "our training step (fwd + bwd + Adam)",
            f"{out['step_ms']:.1f} ms",
            f"{out['train_peak_mb']:.0f}",
        ),
        (
            "floor: 2K bare torch CSR products, A @ X",
            f"{out['floor_ms']:.1f} ms",
            f"{memory['floor']:.0f}",
        ),
        ("the same, fastest call (int32, addmm)", f"{out['floor_fast_ms']:.1f} ms", ""),
        (
            "PyG LightGCN, normalised CSR",
            f"{out['pyg_csr_step_ms']:.1f} ms",
            f"{memory['pyg_csr']:.0f}",
        ),
        (
            "PyG LightGCN, edge_index (its example)",
            f"{out['pyg_edge_index_step_ms']:.1f} ms",
            f"{memory['pyg_edge_index']:.0f}",
        ),
        ("sampling one epoch", f"{out['sample_epoch_s']:.3f} s", f"{memory['sampling']:.0f}"),
        (
            "full epoch" + (" (estimated)" if args.quick else ""),
            f"{out.get('epoch_s', out['epoch_s_estimated']):.1f} s",
            "",
        ),
        ("full-ranking evaluation", f"{out['eval_s']:.2f} s", f"{memory['eval']:.0f}"),
        (
            "bare score matmul + top-K",
            f"{out['eval_floor_s']:.2f} s",
            f"{memory['eval_floor']:.0f}",
        ),
    ]
    print(
        f"Gowalla, dim {DIM}, {LAYERS} layers, batch {BATCH}, {out['device']}, {out['threads']} threads, torch {out['torch']}"
    )
    print(f"| {'what':<42} | {'median':>10} | {'peak MiB':>8} |")
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 10}|")
    for what, t, m in rows:
        print(f"| {what:<42} | {t:>10} | {m:>8} |")
    print(
        f"step / floor = {out['ratio_step_vs_floor']:.2f} (vs the fastest call: "
        f"{out['ratio_step_vs_floor_fast']:.2f}); PyG CSR / ours = {out['speedup_vs_pyg_csr']:.1f}x; "
        f"PyG edge_index / ours = {out['speedup_vs_pyg_edge_index']:.1f}x; "
        f"eval / bare = {out['ratio_eval_vs_floor']:.2f}; peak RSS {out['peak_rss_mb']:.0f} MiB; "
        f"training memory {out['train_peak_mb']:.0f} MiB = {out['ratio_train_memory_vs_budget']:.2f} x "
        f"2 x (adjacency + embeddings + Adam state)"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
