"""The BPR trainer: epochs of sampled triplets, periodic full-ranking evaluation, early stopping,
atomic checkpoints, exact resume and TensorBoard logging."""

from __future__ import annotations

import copy
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor
from tqdm.auto import tqdm

from lightgcn_pyg._malloc import keep_freed_memory
from lightgcn_pyg.data import InteractionSet
from lightgcn_pyg.device import resolve_device
from lightgcn_pyg.evaluation import EvalResult, Evaluator
from lightgcn_pyg.loss import bpr_loss, embedding_l2_loss
from lightgcn_pyg.nn import LightGCN
from lightgcn_pyg.sampling import BPRSampler
from lightgcn_pyg.training import tags
from lightgcn_pyg.training.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from lightgcn_pyg.training.config import TrainConfig
from lightgcn_pyg.training.early_stopping import EarlyStopping

#: Config fields that may differ between a run and its resumption (they do not change the result).
RESUMABLE_OVERRIDES = ("epochs", "device", "progress", "tensorboard", "eval_memory_mb", "patience")


class TrainingDivergedError(RuntimeError):
    """The loss or the embeddings became NaN or infinite."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        best_epoch (int): Epoch (1-based) whose evaluation was best on the selection split.
        best_metrics (dict): Metrics of that evaluation on the selection split.
        test_metrics (dict): Metrics of the best model on the test split.
        eval_split (str): ``"val"`` or ``"test"``: the split that drove model selection.
        epochs_run (int): Epochs completed.
        stopped_early (bool): Early stopping ended the run.
        interrupted (bool): Ctrl-C ended the run (a last checkpoint was written).
        history (list of dict): One entry per evaluation.
        losses (list of float): Mean training loss of every epoch.
    """

    best_epoch: int
    best_metrics: Dict[str, float]
    test_metrics: Dict[str, float]
    eval_split: str
    epochs_run: int
    stopped_early: bool = False
    interrupted: bool = False
    history: List[Dict[str, Any]] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)


def model_args(data: InteractionSet, config: TrainConfig) -> Dict[str, Any]:
    """Constructor arguments of :class:`LightGCN` (besides the graph), as stored in checkpoints."""
    return {
        "num_users": data.num_users,
        "num_items": data.num_items,
        "embedding_dim": config.embedding_dim,
        "num_layers": config.num_layers,
        "init": config.init,
        "init_std": config.init_std,
        "learnable_weights": config.learnable_weights,
        "keep_prob": config.keep_prob,
    }


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where the device supports it (about 7x faster on CPU than
    the multi-tensor version for embedding tables), else the default implementation."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def _stderr(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


class Trainer:
    r"""Trains :class:`~lightgcn_pyg.nn.LightGCN` with BPR on an interaction set.

    Model selection and early stopping use the validation split when the data has one, else the
    test split (the log says which). With an ``out_dir``, ``last.pt`` is written atomically after
    every epoch and ``best.pt`` after every improving evaluation; TensorBoard logs go to
    ``out_dir/tb``.

    Args:
        data (InteractionSet): Train / (validation) / test interactions.
        config (TrainConfig): Hyperparameters.
        out_dir (str or Path, optional): Folder for checkpoints and logs. (default: :obj:`None`)
        log (callable, optional): Receives one-line messages. (default: writes to stderr)
        rank (int): This process's rank under ``torch.distributed``. (default: :obj:`0`)
        world_size (int): Number of processes. (default: :obj:`1`)
    """

    def __init__(
        self,
        data: InteractionSet,
        config: TrainConfig,
        out_dir: Optional[Union[str, Path]] = None,
        log: Optional[Callable[[str], None]] = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        config.validate()
        self.data = data
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.rank = rank
        self.world_size = world_size
        self.is_main = rank == 0
        self._log = log or _stderr
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # no page faults on the per-step buffers (see _malloc.py)

        torch.manual_seed(config.seed)
        self.model = LightGCN(edge_index=data.train_edge_index, **model_args(data, config))
        self.model.to(self.device)
        self.train_model: torch.nn.Module = self.model  # the DDP wrapper when distributed
        self.optimizer = make_adam(self.model.parameters(), config.lr)
        self.sampler = BPRSampler(
            data.train_edge_index,
            num_users=data.num_users,
            num_items=data.num_items,
            batch_size=config.batch_size,
            mode=config.sampling,
            num_neg=config.num_neg,
            seed=config.seed,
            rank=rank,
            world_size=world_size,
        )
        self.eval_split = "val" if data.val_edge_index is not None else "test"
        self.evaluator = self._make_evaluator(self.eval_split)
        self.early_stopping = EarlyStopping(patience=config.patience, mode="max")

        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches of the current epoch already applied
        self.global_step = 0
        self.history: List[Dict[str, Any]] = []
        self.losses: List[float] = []
        self._partial_sums: Dict[str, float] = {"loss": 0.0, "bpr": 0.0, "reg": 0.0}
        self.best_epoch = 0
        self.best_metrics: Dict[str, float] = {}
        self._best_state: Optional[Dict[str, Tensor]] = None
        self._stop_requested = False  # Ctrl-C
        self._should_stop = False  # early stopping, agreed by every rank
        self._writer = None

    # ------------------------------------------------------------------ helpers
    def log(self, message: str) -> None:
        if self.is_main:
            self._log(message)

    def _make_evaluator(self, split: str) -> Evaluator:
        target = self.data.val_edge_index if split == "val" else self.data.test_edge_index
        if target is None or target.numel() == 0:
            dropped = self.data.report.overlap_dropped if split == "test" else 0
            why = (
                f" ({dropped} test pairs were dropped because they are also training pairs)"
                if dropped
                else ""
            )
            raise ValueError(f"The {split} split has no interactions to evaluate on{why}")
        return Evaluator(
            self.data.train_edge_index,
            target,
            num_users=self.data.num_users,
            num_items=self.data.num_items,
            ks=self.config.ks,
            memory_budget_mb=self.config.eval_memory_mb,
        )

    def evaluate(self, split: Optional[str] = None, per_user: bool = False) -> EvalResult:
        """Full-ranking evaluation of the current model on ``split`` (default: the selection split)."""
        split = split or self.eval_split
        evaluator = self.evaluator if split == self.eval_split else self._make_evaluator(split)
        self.model.eval()
        user_emb, item_emb = self.model.embeddings()
        progress = self.config.progress and self.is_main
        return evaluator.evaluate(user_emb, item_emb, per_user=per_user, progress=progress)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue this run exactly (and to use the model without data)."""
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model_args": model_args(self.data, self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "config": self.config.to_dict(),
            "data": self.data.state_dict(),
            "data_fingerprint": self.data.fingerprint(),
            "splits_fingerprint": self.data.splits_fingerprint(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "rng": rng,
            "early_stopping": self.early_stopping.state_dict(),
            "history": self.history,
            "losses": self.losses,
            "partial_sums": self._partial_sums,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "eval_split": self.eval_split,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a run saved by :meth:`state_dict` (after checking it fits this data and config)."""
        saved = TrainConfig.from_dict(state["config"]).to_dict()
        mine = self.config.to_dict()
        differing = sorted(k for k in saved if k not in RESUMABLE_OVERRIDES and saved[k] != mine[k])
        if differing:
            detail = ", ".join(f"{k}: {saved[k]!r} -> {mine[k]!r}" for k in differing)
            raise ValueError(
                f"Cannot resume: the configuration differs from the checkpoint ({detail})"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"Cannot resume: the checkpoint does not fit this model ({first})"
            ) from None
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self.global_step = int(state.get("global_step", 0))
        self.early_stopping.load_state_dict(state["early_stopping"])
        # Patience may be changed on resume: the helper keeps its counters, takes the new value.
        self.early_stopping.patience = self.config.patience
        self.history = list(state.get("history", []))
        self.losses = [float(v) for v in state.get("losses", [])]
        self._partial_sums = {k: float(v) for k, v in state.get("partial_sums", {}).items()}
        self.best_epoch = int(state.get("best_epoch", 0))
        self.best_metrics = dict(state.get("best_metrics", {}))
        self._should_stop = self.early_stopping.should_stop
        rng = state.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)

    def _save(self, name: str) -> None:
        if self.out_dir is not None and self.is_main:
            save_checkpoint(self.state_dict(), self.out_dir / name)

    def _resume(self) -> bool:
        if self.out_dir is None:
            raise ValueError("'resume' needs an output folder ('out_dir') in 'Trainer'")
        path = self.out_dir / LAST
        if not path.exists():
            self.log(f"No checkpoint at {path}: starting a new run")
            return False
        state = load_checkpoint(
            path, map_location=self.device, expected_fingerprint=self.data.fingerprint()
        )
        saved_splits = state.get("splits_fingerprint")
        if saved_splits is not None and saved_splits != self.data.splits_fingerprint():
            raise ValueError(
                f"Cannot resume from {path}: the training, validation or test interactions differ "
                "from the ones the checkpoint was trained on (same id maps, other pairs or another "
                "split); start a new run with another --out"
            )
        self.load_state_dict(state)
        best = self.out_dir / BEST
        if best.exists():
            self._best_state = load_checkpoint(best, map_location="cpu")["model"]
        self.log(
            f"Resumed from {path}: {self.epoch} epochs and {self.batch_in_epoch} batches done, "
            f"step {self.global_step}"
        )
        return True

    # ------------------------------------------------------------------ training
    def train_step(self, src: Tensor, pos: Tensor, neg: Tensor) -> Dict[str, Tensor]:
        """One BPR step on a batch of triplets; returns the (detached) loss parts."""
        src, pos, neg = src.to(self.device), pos.to(self.device), neg.to(self.device)
        batch_size = src.numel()
        items = torch.cat([pos, neg.reshape(-1)])
        user_out, item_out, ego_user, ego_item = self.train_model(src, items, return_ego=True)
        pos_out, neg_out = item_out[:batch_size], item_out[batch_size:]
        pos_scores = (user_out * pos_out).sum(dim=-1)
        if neg.dim() == 2:
            neg_out = neg_out.view(batch_size, neg.size(1), -1)
            neg_scores = (user_out.unsqueeze(1) * neg_out).sum(dim=-1)
        else:
            neg_scores = (user_out * neg_out).sum(dim=-1)
        denominator = self._loss_denominator(batch_size)
        if batch_size > 0:
            loss_bpr = bpr_loss(pos_scores, neg_scores) * (batch_size / denominator)
        else:  # an empty shard of a tiny last batch under DDP: no loss, but join the all-reduce
            loss_bpr = user_out.sum() * 0.0 + item_out.sum() * 0.0
        loss_reg = self.config.reg * embedding_l2_loss(
            ego_user, ego_item[:batch_size], ego_item[batch_size:], batch_size=denominator
        )
        loss = loss_bpr + loss_reg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "bpr": loss_bpr.detach(), "reg": loss_reg.detach()}

    def _loss_denominator(self, batch_size: int) -> float:
        """What the batch's summed loss is divided by (the batch size in one process)."""
        return float(batch_size)

    def _check_finite(self, value: Tensor, what: str, step_counted: bool = False) -> None:
        # 'step_counted': the step that produced 'value' is already in the step counters.
        if not bool(torch.isfinite(value).all()):
            offset = 0 if step_counted else 1
            where = (
                f"epoch {self.epoch + 1}, step {self.batch_in_epoch + offset} "
                f"(global step {self.global_step + offset})"
            )
            saved = (
                f"; the last good checkpoint is {self.out_dir / LAST}"
                if self.out_dir is not None and (self.out_dir / LAST).exists()
                else ""
            )
            raise TrainingDivergedError(
                f"{what} became non-finite at {where}: lower the learning rate or check the data{saved}"
            )

    def _train_epoch(self, bar_position: int) -> Dict[str, float]:
        model = self.train_model
        model.train()
        t0 = time.perf_counter()
        self.sampler.set_epoch(self.epoch)
        batches = list(self.sampler)  # the epoch's triplets are drawn at once; batches are views
        sampling_s = time.perf_counter() - t0
        # A run resumed mid-epoch continues the epoch's loss sums where they stopped.
        sums = (
            dict(self._partial_sums)
            if self.batch_in_epoch
            else {"loss": 0.0, "bpr": 0.0, "reg": 0.0}
        )
        n_done = self.batch_in_epoch
        bar = tqdm(
            batches[self.batch_in_epoch :],  # a resumed run skips the batches already applied
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            position=bar_position,
            # None: tqdm turns itself off when stderr is not a terminal (logs to a file).
            disable=None if (self.config.progress and self.is_main) else True,
            file=sys.stderr,
        )
        for batch in bar:
            parts = self.train_step(batch.src_index, batch.dst_pos_index, batch.dst_neg_index)
            self._check_finite(parts["loss"], "The training loss")
            for key in sums:
                sums[key] += float(parts[key])
            n_done += 1
            self.batch_in_epoch += 1
            self.global_step += 1
            self._partial_sums = sums
            if self._stop_requested:
                break
        bar.close()
        for weight in self.model.parameters():
            self._check_finite(weight.detach(), "The embeddings", step_counted=True)
        sums, n_done = self._reduce_epoch_stats(sums, n_done)
        elapsed = time.perf_counter() - t0
        means = {k: v / max(n_done, 1) for k, v in sums.items()}
        return {**means, "sampling_s": sampling_s, "epoch_s": elapsed, "batches": n_done}

    def _handle_sigint(self, signum, frame) -> None:  # pragma: no cover - exercised via subprocess
        if self._stop_requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop_requested = True
        self.log("Interrupt received: finishing this step, writing a checkpoint, then stopping")

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until ``config.epochs`` or early stopping; returns a :class:`TrainResult`."""
        cfg = self.config
        if resume:
            self._resume()
        if self.out_dir is not None and self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log(
            f"Training LightGCN on {self.device}: {self.data.num_users} users, "
            f"{self.data.num_items} items, {self.data.num_train} train interactions; "
            f"model selection on the {'validation' if self.eval_split == 'val' else 'test'} split"
            + ("" if self.eval_split == "val" else " (no validation split given)")
        )
        writer = self._open_writer()
        previous_handler = None
        if self.world_size == 1 and _in_main_thread():
            previous_handler = signal.signal(signal.SIGINT, self._handle_sigint)
        interrupted = False
        try:
            epoch_bar = tqdm(
                total=cfg.epochs,
                initial=self.epoch,
                desc="training",
                position=0,
                disable=None if (cfg.progress and self.is_main) else True,
                file=sys.stderr,
            )
            while self.epoch < cfg.epochs and not self._should_stop:
                stats = self._train_epoch(bar_position=1)
                if self._stop_requested and self.batch_in_epoch < len(self.sampler):
                    interrupted = True
                    self._save(LAST)
                    break
                self.epoch += 1
                self.batch_in_epoch = 0
                epoch_bar.update(1)
                self.losses.append(stats["loss"])
                self._log_epoch(writer, stats)
                if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs:
                    self._evaluate_and_select(writer)
                self._save(LAST)
                if self._stop_requested:
                    interrupted = True
                    break
            epoch_bar.close()
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        result = self._finish(writer, interrupted)
        return result

    def _open_writer(self):
        if self.out_dir is None or not self.config.tensorboard or not self.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        # Steps are epochs. A resumed run hides the events a crashed run wrote after its last
        # checkpoint (steps > epoch), and keeps the last completed epoch's (step == epoch).
        self._writer = SummaryWriter(
            log_dir=str(self.out_dir / "tb"), purge_step=self.epoch + 1 if self.epoch else None
        )
        return self._writer

    def _log_epoch(self, writer, stats: Dict[str, float]) -> None:
        self.log(
            f"epoch {self.epoch:4d}/{self.config.epochs} | loss {stats['loss']:.5f} "
            f"(bpr {stats['bpr']:.5f}, reg {stats['reg']:.5f}) | sampling {stats['sampling_s']:.2f}s "
            f"| epoch {stats['epoch_s']:.1f}s"
        )
        if writer is not None:
            writer.add_scalar(tags.TRAIN_LOSS, stats["loss"], self.epoch)
            writer.add_scalar(tags.TRAIN_BPR_LOSS, stats["bpr"], self.epoch)
            writer.add_scalar(tags.TRAIN_REG_LOSS, stats["reg"], self.epoch)
            writer.add_scalar(tags.SAMPLING_TIME, stats["sampling_s"], self.epoch)
            writer.add_scalar(tags.EPOCH_TIME, stats["epoch_s"], self.epoch)

    def _evaluate_and_select(self, writer) -> None:
        t0 = time.perf_counter()
        result = self.evaluate() if self.is_main else None
        eval_s = time.perf_counter() - t0
        improved = False
        if self.is_main:
            metrics = {k: float(v) for k, v in result.metrics.items()}
            value = metrics[self.config.metric]
            improved = self.early_stopping.step(value)
            self.history.append({"epoch": self.epoch, "split": self.eval_split, **metrics})
            shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            self.log(
                f"eval @ epoch {self.epoch} ({self.eval_split}, {result.num_users} users, {eval_s:.1f}s): "
                f"{shown}{'  *best*' if improved else ''}"
            )
            if writer is not None:
                for key, v in metrics.items():
                    writer.add_scalar(tags.metric_tag(self.eval_split, key), v, self.epoch)
                writer.add_scalar(tags.EVAL_TIME, eval_s, self.epoch)
            if improved:
                self.best_epoch = self.epoch
                self.best_metrics = metrics
                self._best_state = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
                self._save(BEST)
            self._should_stop = self.early_stopping.should_stop
        self._should_stop = self._agree_on_stop(self._should_stop)

    def _agree_on_stop(self, should_stop: bool) -> bool:
        """Rank 0's early-stopping decision, shared with every rank (a no-op in one process)."""
        return should_stop

    def _reduce_epoch_stats(
        self, sums: Dict[str, float], n_done: int
    ) -> Tuple[Dict[str, float], int]:
        """Sum the loss statistics over ranks (a no-op in one process)."""
        return sums, n_done

    def _finish(self, writer, interrupted: bool) -> TrainResult:
        test_metrics: Dict[str, float] = {}
        if self.is_main and not interrupted:
            if self._best_state is not None:
                current = copy.deepcopy(self.model.state_dict())
                self.model.load_state_dict(self._best_state)
                test = self.evaluate("test")
                self.model.load_state_dict(current)
            else:
                test = self.evaluate("test")
            test_metrics = test.to_dict()  # the same keys as 'lightgcn eval --json'
            if writer is not None:
                hparams = {
                    k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                    for k, v in self.config.to_dict().items()
                }
                final = {f"hparam/{k}": v for k, v in test.metrics.items()}
                writer.add_hparams(hparams, final, run_name="hparams")
            self.log(
                "test metrics of the best model (epoch "
                f"{self.best_epoch or self.epoch}): "
                + " ".join(f"{k} {v:.4f}" for k, v in test.metrics.items())
            )
        if writer is not None:
            writer.close()
        return TrainResult(
            best_epoch=self.best_epoch,
            best_metrics=self.best_metrics,
            test_metrics=test_metrics,
            eval_split=self.eval_split,
            epochs_run=self.epoch,
            stopped_early=self._should_stop,
            interrupted=interrupted,
            history=self.history,
            losses=self.losses,
        )


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


__all__ = ["Trainer", "TrainResult", "TrainingDivergedError", "model_args"]
