"""The training loop of one student and seed, on ``accelerate``.

AdamW with a linear schedule, gradient accumulation (``Accelerator.accumulate``), mixed precision
where the device has it, and one forward pass per micro-batch over every view of the objective
(see ``distillation.features.BatchCollator``). Every ``checkpoint_every`` steps
``Accelerator.save_state`` writes the weights, optimizer, schedule and random generators to
``checkpoint/``, and ``loop_state.json`` beside them the loop's own position (step, epoch, next
batch, best validation score), so that a resumed run continues with exactly the losses an
uninterrupted one has. A new checkpoint is written beside the last one and takes its place only
when complete.

The weights that are evaluated afterwards depend on ``training.selection``: ``last`` keeps those
after the last step in ``last/`` (as the paper evaluated); ``best_validation`` keeps the best on
the validation split in ``best/``. The test split is never seen here.

Batches: ``training.batch_size`` examples per optimiser step, in passes of
``per_device_batch_size`` on each device, with the accumulation steps that make up the rest
(``TrainingConfig.batch_split``). Multi-GPU: run the same command under ``accelerate launch``
or ``torchrun``; each process takes its share of every batch of examples.

An accelerator holds the model, optimizer and schedule of one run (``save_state`` writes all it
has prepared), so every call of ``student_train`` gets its own, from ``accelerator_create``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distillation.config import TrainingConfig
from distillation.errors import ConfigError, DataError
from distillation.features import BatchCollator, FeatureSet, batches_length_grouped
from distillation.objectives import (
    view_sums_loss,
    view_token_sums,
    view_weights,
    weighted_view_loss,
)
from distillation.students import decoder_start_token_id, student_save

CHECKPOINT_DIR = "checkpoint"
# The loop's position in a checkpoint, beside the state that ``Accelerator.save_state`` writes.
LOOP_STATE_FILE = "loop_state.json"
BEST_DIR = "best"
LAST_DIR = "last"
SELECTED_DIRS = {"best_validation": BEST_DIR, "last": LAST_DIR}
METRICS_FILE = "metrics.jsonl"
TRAINING_FILE = "training.json"
# How often a progress line is written when the output is not a terminal (a log file, a pipe,
# CI): often enough that a slow machine never looks stuck, seldom enough to read.
PROGRESS_EVERY_SECONDS = 5.0


def duration_text(seconds: float) -> str:
    """A time left as people read it.

    Examples
    --------
    >>> [duration_text(s) for s in (4.2, 75, 3725)]
    ['4 s', '1 min 15 s', '1 h 02 min']
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressLines:
    """Progress of a training run as plain lines, for output that is not a terminal.

    ``update(step, loss)`` after each optimiser step writes a line through ``log`` once at
    least ``every`` seconds (default ``PROGRESS_EVERY_SECONDS``) have passed since the last
    one, and always at the last step: step, loss, steps per second over this run's work so
    far, and the time left at that rate.

    Examples
    --------
    >>> ticks = iter([0.0, 1.0, 6.0, 7.0, 8.0])
    >>> lines = []
    >>> progress = ProgressLines(
    ...     label="tiny-mt", total=4, initial=0, log=lines.append, clock=lambda: next(ticks)
    ... )
    >>> for step, loss in enumerate([2.5, 2.0, 1.5, 1.25], start=1):
    ...     progress.update(step, loss)
    >>> print(*lines, sep="\\n")
    train: tiny-mt: step 2/4, loss 2.0000, 0.33 steps/s, about 6 s left
    train: tiny-mt: step 4/4, loss 1.2500, 0.50 steps/s, done
    """

    def __init__(
        self,
        *,
        label: str,
        total: int,
        initial: int,
        log: Callable[[str], None],
        every: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.label, self.total, self.initial = label, total, initial
        self.log = log
        self.every = PROGRESS_EVERY_SECONDS if every is None else every
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self.last = self.started

    def update(self, step: int, loss: float) -> None:
        now = self.clock()
        if now - self.last < self.every and step < self.total:
            return
        self.last = now
        elapsed = now - self.started
        done = step - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        if step >= self.total:
            left = "done"
        elif rate > 0:
            left = f"about {duration_text((self.total - step) / rate)} left"
        else:
            left = "time left unknown"
        self.log(
            f"train: {self.label}: step {step}/{self.total}, loss {loss:.4f}, "
            f"{rate:.2f} steps/s, {left}"
        )


@dataclass
class TrainResult:
    """What a finished training run reports (also written to ``training.json``)."""

    steps: int
    best_step: int
    best_validation_accuracy: float
    best_validation_loss: float
    final_loss: float
    examples: int
    skipped: dict[str, int] = field(default_factory=dict)
    resumed_from: int = 0
    selection: str = "best_validation"  # which weights were kept for evaluation
    selected_step: int = -1  # the step of those weights


def mixed_precision_resolve(setting: str) -> str:
    """``auto`` → bf16 on GPUs that support it, fp16 on other GPUs, none on CPU."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def accelerator_create(training: TrainingConfig) -> Any:
    """A new accelerator for one training run.

    Each batch of examples is shared out among the processes (``split_batches``), so the
    prepared schedule steps once per optimiser step whatever the number of processes.
    """
    from accelerate import Accelerator, DataLoaderConfiguration

    precision = mixed_precision_resolve(training.mixed_precision)
    if precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError(
            "training.mixed_precision = 'fp16' needs a GPU; use 'auto', 'no' or 'bf16' on a CPU"
        )
    return Accelerator(
        mixed_precision=precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
    )


def selected_dir(output_dir: Path) -> Path:
    """The folder of the weights a finished run selected (``best/`` for runs that predate it)."""
    record = json.loads((output_dir / TRAINING_FILE).read_text(encoding="utf-8"))
    return output_dir / SELECTED_DIRS[record.get("selection", "best_validation")]


def training_complete(output_dir: Path) -> bool:
    return (output_dir / TRAINING_FILE).is_file() and selected_dir(output_dir).is_dir()


Validator = Callable[[Any], dict[str, float]]


def collator_build(
    features: FeatureSet, *, method: str, training: TrainingConfig, tokenizer: Any, model: Any
) -> tuple[BatchCollator, torch.Tensor]:
    """The collator of ``method``'s views and each view's weight in the objective, in one order.

    Training and the validation loss both batch their examples with it.
    """
    weights = view_weights(method, training.objective)
    views = [view for view in features.views if view in weights]
    collator = BatchCollator(
        features,
        pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=decoder_start_token_id(model),
        views=views,
    )
    view_weight = torch.tensor([weights[view] for view in views], dtype=torch.float32)
    return collator, view_weight


@dataclass
class LoopState:
    """Where the training loop stands: what a checkpoint adds to ``Accelerator.save_state``.

    Written as ``loop_state.json`` in the checkpoint folder.

    Examples
    --------
    >>> state = LoopState(step=3, epoch=1, position=2, best_step=2, best_accuracy=0.5)
    >>> state.last_loss = 1.25
    >>> LoopState.from_json(state.to_json()) == state
    True
    """

    step: int = 0
    epoch: int = 0
    position: int = 0  # next batch of the current epoch
    best_step: int = -1
    best_accuracy: float = -1.0
    best_loss: float = math.inf
    last_loss: float = math.nan

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LoopState:
        return cls(**json.loads(text))


class _Trainer:
    """State of one training run; ``run`` drives it from the start or a checkpoint."""

    def __init__(
        self,
        *,
        model: Any,
        tokenizer: Any,
        features: FeatureSet,
        method: str,
        training: TrainingConfig,
        seed: int,
        output_dir: Path,
        validate: Validator,
        accelerator: Any,
        progress: bool,
        log: Callable[[str], None] | None = None,
        label: str = "",
    ) -> None:
        from transformers import get_linear_schedule_with_warmup

        self.log = log
        self.label = label or output_dir.name

        self.accelerator = accelerator
        self.training = training
        self.seed = seed
        self.output_dir = output_dir
        self.validate = validate
        self.tokenizer = tokenizer
        self.progress = progress
        self.features = features
        self.collator, self.view_weight = collator_build(
            features, method=method, training=training, tokenizer=tokenizer, model=model
        )
        self.split = training.batch_split(accelerator.num_processes)
        if accelerator.num_processes > 1 and not accelerator.split_batches:
            raise ValueError(
                "the accelerator must share each batch among the processes (split_batches); "
                "create it with accelerator_create"
            )
        # The accumulation setting is shared by all accelerators of a process: set it per run.
        accelerator.gradient_accumulation_steps = self.split.accumulation
        self.indices = features.usable_indices()
        if len(self.indices) == 0:
            raise ValueError("no training example has a usable view; check the teacher outputs")
        self.lengths = features.lengths()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
        )
        scheduler = get_linear_schedule_with_warmup(
            optimizer, training.warmup_steps, training.steps
        )
        self.model, self.optimizer, self.scheduler = accelerator.prepare(
            model, optimizer, scheduler
        )
        accelerator.register_save_state_pre_hook(_shared_aliases_drop)
        self.loop = LoopState()
        self.resumed_from = 0

    # -- batches ----------------------------------------------------------------------------
    def _epoch_batches(self) -> list[np.ndarray]:
        # One batch here is one pass on every device: the processes share it out.
        per_pass = self.split.per_device * self.split.processes
        return batches_length_grouped(
            self.indices, self.lengths, batch_size=per_pass, seed=self.seed, epoch=self.loop.epoch
        )

    def _next_batch(self, batches: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        if self.loop.position >= len(batches):
            self.loop.epoch += 1
            self.loop.position = 0
            batches = self._epoch_batches()
        batch = batches[self.loop.position]
        self.loop.position += 1
        shard = batch[self.accelerator.process_index :: self.accelerator.num_processes]
        return shard, batches

    def _loss(self, shard: np.ndarray) -> torch.Tensor:
        with self.accelerator.autocast():
            return passes_loss(
                self.model,
                self.collator.passes(shard.tolist()),
                self.view_weight,
                device=self.accelerator.device,
            )

    # -- one optimizer step -----------------------------------------------------------------
    def train_step(self, batches: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        """One optimiser step over ``accumulation`` micro-batches; the mean loss over them."""
        self.model.train()
        accumulation = self.split.accumulation
        total = 0.0
        for _ in range(accumulation):
            shard, batches = self._next_batch(batches)
            # Gradients are synchronised, and the optimizer and schedule step, only on the
            # last micro-batch; ``backward`` divides the loss by the accumulation steps.
            with self.accelerator.accumulate(self.model):
                loss = self._loss(shard)
                self.accelerator.backward(loss)
                if self.accelerator.sync_gradients and self.training.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(
                        self.model.parameters(), self.training.max_grad_norm
                    )
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach() / accumulation)
        self.loop.step += 1
        mean = torch.tensor(total, device=self.accelerator.device)
        return float(self.accelerator.reduce(mean, reduction="mean")), batches

    # -- bookkeeping ------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self.accelerator.is_main_process:
            with (self.output_dir / METRICS_FILE).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def _evaluate(self) -> None:
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        scores = self.validate(model)
        loop = self.loop
        self._log({"step": loop.step, **{f"validation_{k}": v for k, v in scores.items()}})
        accuracy, loss = scores["accuracy"], scores.get("loss", math.inf)
        if (accuracy, -loss) > (loop.best_accuracy, -loop.best_loss):
            loop.best_step, loop.best_accuracy, loop.best_loss = loop.step, accuracy, loss
            if self.training.selection == "best_validation" and self.accelerator.is_main_process:
                student_save(model, self.tokenizer, self.output_dir / BEST_DIR)
        self.accelerator.wait_for_everyone()

    def last_save(self) -> None:
        """Keep the weights after the last step as the selected ones."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            model = self.accelerator.unwrap_model(self.model)
            student_save(model, self.tokenizer, self.output_dir / LAST_DIR)
        self.accelerator.wait_for_everyone()

    def checkpoint_save(self) -> None:
        directory = self.output_dir / CHECKPOINT_DIR
        partial = _sibling(directory, "partial")
        main = self.accelerator.is_main_process
        if main and partial.exists():
            shutil.rmtree(partial)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(partial))
        self.accelerator.wait_for_everyone()
        if main:
            (partial / LOOP_STATE_FILE).write_text(self.loop.to_json(), encoding="utf-8")
            _directory_replace(partial, directory)
        self.accelerator.wait_for_everyone()

    def checkpoint_load(self) -> bool:
        directory = self.output_dir / CHECKPOINT_DIR
        if self.accelerator.is_main_process:
            _directory_recover(directory)
        self.accelerator.wait_for_everyone()
        if not directory.is_dir():
            return False
        loop_file = directory / LOOP_STATE_FILE
        if not loop_file.is_file():
            raise DataError(
                f"{directory} holds a checkpoint written by an earlier version of this program, "
                "which cannot be resumed; delete that folder to train this student again from "
                "the start, or use a new run folder"
            )
        try:
            self.accelerator.load_state(str(directory))
            self.loop = LoopState.from_json(loop_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, RuntimeError) as error:
            raise DataError(
                f"{directory}: the checkpoint cannot be read ({error}); delete that folder to "
                "train this student again from the start"
            ) from None
        self.resumed_from = self.loop.step
        _metrics_truncate(self.output_dir / METRICS_FILE, self.loop.step)
        return True

    def run(self, *, stop_after: int | None = None) -> TrainResult:
        from accelerate.utils import set_seed
        from tqdm.auto import tqdm

        if not self.checkpoint_load():
            set_seed(self.seed)
            (self.output_dir / METRICS_FILE).unlink(missing_ok=True)
        loop = self.loop
        batches = self._epoch_batches()
        last = self.training.steps if stop_after is None else min(stop_after, self.training.steps)
        main = self.accelerator.is_main_process
        bar = tqdm(
            total=self.training.steps,
            initial=loop.step,
            disable=not (self.progress and main),
            desc=self.label,
            leave=False,
        )
        # In a terminal the bar shows progress; elsewhere, plain lines every few seconds.
        lines = (
            ProgressLines(
                label=self.label, total=self.training.steps, initial=loop.step, log=self.log
            )
            if self.log is not None and main and not self.progress
            else None
        )
        while loop.step < last:
            loss, batches = self.train_step(batches)
            loop.last_loss = loss
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if lines is not None:
                lines.update(loop.step, loss)
            if loop.step % self.training.log_every == 0 or loop.step == self.training.steps:
                lr = self.scheduler.get_last_lr()[0]
                self._log({"step": loop.step, "epoch": loop.epoch, "loss": loss, "lr": lr})
            if loop.step % self.training.eval_every == 0 or loop.step == self.training.steps:
                self._evaluate()
            if loop.step % self.training.checkpoint_every == 0 or loop.step == self.training.steps:
                self.checkpoint_save()
        bar.close()
        finished = loop.step >= self.training.steps
        last = self.training.selection == "last"
        if finished and last:
            self.last_save()
        return TrainResult(
            steps=loop.step,
            best_step=loop.best_step,
            best_validation_accuracy=float(loop.best_accuracy),
            best_validation_loss=float(loop.best_loss),
            final_loss=loop.last_loss,
            examples=len(self.indices),
            skipped=dict(self.features.skipped),
            resumed_from=self.resumed_from,
            selection=self.training.selection,
            selected_step=loop.step if last else loop.best_step,
        )


def _shared_aliases_drop(models: list[Any], weights: list[dict[str, Any]], output_dir: str) -> None:
    """Keep one name of each tensor that several names share (a T5's tied embeddings).

    Safetensors stores a tensor once; loading gives the other names back from the model.
    ``save_state`` would drop the same names, with a warning at every checkpoint.
    """
    for state in weights:
        seen: set[tuple[Any, ...]] = set()
        for name in list(state):
            tensor = state[name]
            if not isinstance(tensor, torch.Tensor) or tensor.numel() == 0:
                continue
            where = (
                tensor.device,
                tensor.untyped_storage().data_ptr(),
                tensor.storage_offset(),
                tuple(tensor.shape),
                tensor.stride(),
            )
            if where in seen:
                del state[name]
            seen.add(where)


def _sibling(directory: Path, suffix: str) -> Path:
    return directory.with_name(f"{directory.name}.{suffix}")


def _directory_replace(source: Path, target: Path) -> None:
    """Put the folder ``source`` at ``target``; a crash at any point leaves one whole folder."""
    previous = _sibling(target, "previous")
    if previous.exists():
        shutil.rmtree(previous)
    if target.exists():
        target.rename(previous)
    source.rename(target)
    shutil.rmtree(previous, ignore_errors=True)


def _directory_recover(target: Path) -> None:
    """Finish a ``_directory_replace`` that a crash interrupted between its two renames."""
    previous = _sibling(target, "previous")
    if previous.exists() and not target.exists():
        previous.rename(target)


def _metrics_truncate(path: Path, step: int) -> None:
    """Drop the records a crashed run wrote after its last checkpoint; they will be redone."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def student_train(
    *,
    model: Any,
    tokenizer: Any,
    features: FeatureSet,
    method: str,
    training: TrainingConfig,
    seed: int,
    output_dir: Path,
    validate: Validator,
    accelerator: Any | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    label: str = "",
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``model`` on ``features`` with ``method``'s objective, resuming if a checkpoint exists.

    ``validate(model)`` returns at least ``{"accuracy": …}`` (optionally ``"loss"``) on the
    validation split. ``training.selection`` picks the weights kept for evaluation: those after
    the last step (``output_dir/last``) or the best-scoring ones (``output_dir/best``). ``stop_after``
    ends the run early at that step (after its checkpoint, if one falls due), as an
    interruption would; the run is complete only when ``training.json`` is written.

    ``progress`` shows a tqdm bar (for a terminal). Without it, ``log`` (when given) receives
    a progress line every few seconds: step, loss, steps per second and the time left, named
    by ``label`` (default: the output folder's name).

    ``accelerator`` defaults to a new one from ``accelerator_create``; one given here must be
    new as well, since ``save_state`` writes every model an accelerator has prepared.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(
        model=model,
        tokenizer=tokenizer,
        features=features,
        method=method,
        training=training,
        seed=seed,
        output_dir=output_dir,
        validate=validate,
        accelerator=accelerator if accelerator is not None else accelerator_create(training),
        progress=progress,
        log=log,
        label=label,
    )
    result = trainer.run(stop_after=stop_after)
    if result.steps >= training.steps and trainer.accelerator.is_main_process:
        (output_dir / TRAINING_FILE).write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def passes_loss(
    model: Any,
    passes: Sequence[dict[str, torch.Tensor]],
    view_weight: torch.Tensor,
    *,
    device: Any,
) -> torch.Tensor:
    """The objective over a step's rows, run as the given forward passes.

    Token-loss sums and label counts are added up per view over the passes before dividing,
    so the result equals one pass over all rows (and one pass per view).
    """
    sums = torch.zeros(view_weight.numel(), device=device)
    counts = torch.zeros(view_weight.numel(), device=device)
    for batch in passes:
        batch = {key: value.to(device) for key, value in batch.items()}
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
        ).logits
        part_sums, part_counts = view_token_sums(
            logits, batch["labels"], batch["view_ids"], view_weight.numel()
        )
        sums = sums + part_sums
        counts = counts + part_counts
    return view_sums_loss(sums, counts, view_weight.to(device))


def validation_loss(
    model: Any,
    features: FeatureSet,
    *,
    method: str,
    training: TrainingConfig,
    tokenizer: Any,
    device: Any,
    indices: Sequence[int] | None = None,
) -> float:
    """The objective on held-out examples (mean over batches), without dropout."""
    collator, view_weight = collator_build(
        features, method=method, training=training, tokenizer=tokenizer, model=model
    )
    view_weight = view_weight.to(device)
    usable = features.usable_indices() if indices is None else np.asarray(indices)
    losses = []
    with torch.no_grad():
        for start in range(0, len(usable), training.eval_batch_size):
            batch = collator(usable[start : start + training.eval_batch_size].tolist())
            batch = {key: value.to(device) for key, value in batch.items()}
            logits = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                decoder_input_ids=batch["decoder_input_ids"],
            ).logits
            losses.append(
                float(weighted_view_loss(logits, batch["labels"], batch["view_ids"], view_weight))
            )
    return float(np.mean(losses)) if losses else math.nan
