"""The training loop: epochs of batches, validation every epoch, early stopping, and a state
saved every few hundred steps so that a killed run resumes where it was, to the same result."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from zh_rnn_encoder.export.training.corpus import Batch, Batches
from zh_rnn_encoder.export.training.objectives import TrainModel

STATE_FILE = "train-state.pt"


@dataclass(frozen=True)
class Schedule:
    epochs: int = 8
    patience: int = 2  # epochs without a better validation score before stopping
    lr: float = 2e-3
    weight_decay: float = 0.0
    clip: float = 1.0
    save_every: int = 200  # steps between saved states (and at every epoch's end)
    final_lr: float = 1.0  # the learning rate decays linearly to this share of lr at the end
    steps_per_epoch: int = 0  # for the decay: estimated from the data's size


@dataclass
class Progress:
    """Everything that changes as training runs; saved with the weights."""

    epoch: int = 0  # the epoch in progress
    step: int = 0  # batches done in it
    best: float = -float("inf")  # the best validation score (higher is better)
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    done: bool = False
    texts: int = 0  # trained in the epoch in progress
    sums: dict[str, float] = field(default_factory=dict)  # its loss terms, summed over texts
    seconds: float = 0.0  # spent on it


def score_of(row: dict) -> float:
    """Validation accuracy when there are labels, else minus the validation loss."""
    acc = row.get("valid_accuracy")
    return float(acc) if acc is not None else -float(row["valid_loss"])


class Trainer:
    def __init__(
        self,
        model: TrainModel,
        train: Batches,
        valid: Batches,
        schedule: Schedule,
        out: Path,
        on_step: Callable[[int, float, float], None] | None = None,
    ) -> None:
        self.model, self.train, self.valid, self.s = model, train, valid, schedule
        self.out, self.on_step = Path(out), on_step
        self.opt = torch.optim.Adam(
            model.parameters(), schedule.lr, weight_decay=schedule.weight_decay
        )
        total = max(1, schedule.epochs * schedule.steps_per_epoch)
        share = lambda step: 1 - (1 - schedule.final_lr) * min(step / total, 1.0)  # noqa: E731
        self.decay = torch.optim.lr_scheduler.LambdaLR(self.opt, share)
        self.p = Progress()
        self.best_state: dict = copy.deepcopy(model.encoder.state_dict())

    # -- state ----------------------------------------------------------------------------
    def save(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "decay": self.decay.state_dict(),
            "progress": asdict(self.p),
            "best_state": self.best_state,
            "rng": torch.random.get_rng_state(),
        }
        tmp = self.out / f".{STATE_FILE}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.out / STATE_FILE)

    def load(self) -> None:
        state = torch.load(self.out / STATE_FILE, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.decay.load_state_dict(state["decay"])
        self.p = Progress(**state["progress"])
        self.best_state = state["best_state"]
        torch.random.set_rng_state(state["rng"])

    # -- running --------------------------------------------------------------------------
    def run(self, on_epoch: Callable[[dict], None]) -> Progress:
        while not self.p.done and self.p.epoch < self.s.epochs:
            row = self._epoch()
            self.p.history.append(row)
            self._judge(row)
            self.p.epoch, self.p.step = self.p.epoch + 1, 0
            if self.p.bad_epochs >= self.s.patience:
                self.p.done = True
            self.save()
            on_epoch(row)
        self.p.done = True
        self.save()
        return self.p

    def _epoch(self) -> dict:
        self.model.train()
        p, t0 = self.p, time.perf_counter() - self.p.seconds
        for i, batch in enumerate(self.train.epoch(p.epoch)):
            if i < p.step:
                continue  # resumed: these batches were trained before the state was saved
            loss, parts = self._step(batch)
            p.texts += len(batch)
            for k, v in parts.items():
                p.sums[k] = p.sums.get(k, 0.0) + v * len(batch)
            p.step, p.seconds = i + 1, time.perf_counter() - t0
            if self.on_step:
                self.on_step(len(batch), loss, p.texts / max(p.seconds, 1e-9))
            if p.step % self.s.save_every == 0:
                self.save()
        row = {"epoch": p.epoch + 1}
        row |= {f"train_{k}": v / max(p.texts, 1) for k, v in sorted(p.sums.items())}
        row |= self.evaluate()
        row |= {"train_texts_per_s": p.texts / max(p.seconds, 1e-9), "seconds": p.seconds}
        p.texts, p.sums, p.seconds = 0, {}, 0.0
        return row

    def _step(self, b: Batch) -> tuple[float, dict[str, float]]:
        parts = self.model.losses(*_tensors(b))
        parts.pop("correct", None)
        loss = sum(self.model.terms[k] * v for k, v in parts.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.s.clip)
        self.opt.step()
        self.decay.step()
        return loss.item(), {k: v.item() for k, v in parts.items()}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Validation loss (and accuracy when labelled), with training noise off."""
        self.model.eval()
        n, loss, correct, labelled = 0, 0.0, 0, 0
        for b in self.valid.epoch(0, shuffle=False):
            parts = self.model.losses(*_tensors(b))
            correct += int(parts.pop("correct", 0))
            labelled += int((b.labels >= 0).sum())
            loss += float(sum(self.model.terms[k] * v for k, v in parts.items())) * len(b)
            n += len(b)
        self.model.train()
        row = {"valid_loss": loss / max(n, 1)}
        if self.model.head is not None:
            row["valid_accuracy"] = correct / max(labelled, 1)
        return row

    def _judge(self, row: dict) -> None:
        score = score_of(row)
        if score > self.p.best:
            self.p.best, self.p.best_epoch, self.p.bad_epochs = score, row["epoch"], 0
            self.best_state = copy.deepcopy(self.model.encoder.state_dict())
        else:
            self.p.bad_epochs += 1


def _tensors(b: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    return (
        torch.from_numpy(b.ids),
        torch.from_numpy(np.ascontiguousarray(b.lengths)),
        torch.from_numpy(b.labels),
        None if b.soft is None else torch.from_numpy(b.soft),
    )
