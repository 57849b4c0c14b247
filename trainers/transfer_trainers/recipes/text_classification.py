"""Recipe `text-classification`: a Hugging Face encoder (transformers, peft) + a new linear head
on the mean-pooled (or CLS) output, adapted with any of the six strategies.

Models come from local directories or installed packages only (see sources.py). The whole
recipe is this file: model building, validation before Ray starts, the per-worker loop and
the export of the adapted model.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from transfer_trainers import datasets, loop, strategies
from transfer_trainers.contract import Recipe, TrainerError, parse_config
from transfer_trainers.sources import EXPORT_MARKER, resolve_model_dir
from transfer_trainers.spec import JobSpec, StrictWire

NAME = "text-classification"


class TextConfig(StrictWire):
    """`spec.trainer.config` of this trainer."""

    num_layers: int | None = Field(None, gt=0, description="keep only the first k encoder layers "
                                   "(the student's depth under distillation; default half the teacher's)")
    pooling: Literal["mean", "cls"] = "mean"
    head_dropout: float = Field(0.1, ge=0, lt=1)
    max_eval_examples: int = Field(1000, gt=0)
    eval_batch_size: int = Field(64, gt=0)
    labels: list[str | int] | None = Field(None, description="expected label set; others are an error")
    from_scratch: bool = Field(False, description="random init of the same architecture (baselines)")
    student_layers: int | None = Field(None, gt=0, description="distillation: student depth (default "
                                       "numLayers, else half the teacher's)")
    teacher_layers: int | None = Field(None, gt=0, description="distillation: cut a base-model teacher to k layers")
    teacher_steps: int | None = Field(None, gt=0, description="distillation: steps to fine-tune a base-model "
                                      "teacher before distilling (default: the student's step count)")
    group_by_length: bool = Field(False, description="batches of texts of about the same length (Hugging Face's "
                                  "group_by_length): little padding, so faster steps; the batches change, the data "
                                  "and the number of steps do not")


# --------------------------------------------------------------------------- model


class TextClassifier(nn.Module):
    def __init__(self, backbone: Any, hidden: int, num_labels: int, pooling: str, dropout: float) -> None:
        super().__init__()
        self.backbone: Any = backbone  # a transformers PreTrainedModel (or its peft wrapper)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-6)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(input_ids, attention_mask)))


def load_backbone(model_dir: Path, num_layers: int | None, quantize4bit: bool = False,
                  from_scratch: bool = False) -> Any:
    from transformers import AutoConfig, AutoModel

    cfg = AutoConfig.from_pretrained(model_dir)
    if num_layers:
        cfg.num_hidden_layers = min(num_layers, cfg.num_hidden_layers)
    if from_scratch:
        return AutoModel.from_config(cfg)
    kwargs: dict[str, Any] = {}
    if quantize4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.bfloat16)
    return AutoModel.from_pretrained(model_dir, config=cfg, **kwargs)


def backbone_layers(backbone: Any) -> list[nn.Module]:
    """Bottom-to-top: the embeddings, then each transformer block."""
    n = backbone.config.num_hidden_layers
    blocks = next(m for m in backbone.modules() if isinstance(m, nn.ModuleList) and len(m) == n)
    emb = getattr(backbone, "embeddings", None)
    return ([emb] if emb is not None else []) + list(blocks)


def load_exported(model_dir: Path) -> tuple[TextClassifier, Any, dict[str, Any]]:
    """A classifier written by `export` (runs/<name>/model): (model, tokenizer, its metadata)."""
    from transformers import AutoModel, AutoTokenizer

    meta = json.loads((model_dir / EXPORT_MARKER).read_text())
    if meta.get("lora"):
        from peft import PeftModel

        base = load_backbone(Path(meta["base"]), meta["num_layers"])
        backbone = PeftModel.from_pretrained(base, model_dir / "adapter").merge_and_unload()
    else:
        backbone = AutoModel.from_pretrained(model_dir / "backbone")
    model = TextClassifier(backbone, backbone.config.hidden_size, len(meta["labels"]), meta["pooling"], 0.0)
    model.head.load_state_dict(torch.load(model_dir / "head.pt", map_location="cpu"))
    return model, AutoTokenizer.from_pretrained(model_dir / "tokenizer"), meta


def _linear_shape(module: nn.Module) -> tuple[int, int] | None:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":  # GPT-2 style projection
        w: Any = module.weight
        return int(w.shape[0]), int(w.shape[1])
    return None


# --------------------------------------------------------------------------- validation


def validate(job: JobSpec) -> None:
    """Everything that can be checked on the driver, before any Ray worker starts."""
    from transformers import AutoConfig

    loop.quiet_libraries()
    if job.model.task != "textClassification":
        raise TrainerError("spec.model.task", f"{NAME} trains textClassification, not {job.model.task}; "
                                              "use trainer image-classification for images")
    cfg = parse_config(TextConfig, job)
    exported_as = "adapter" if job.strategy.type == "lora" else "full"
    if job.output is not None and job.output.format not in (None, exported_as):
        raise TrainerError("spec.output.format", f"{NAME} exports {exported_as} under {job.strategy.type}; "
                                                 f"set format: {exported_as} or leave it out")
    model_dir = resolve_model_dir(job.model.source)
    if (model_dir / EXPORT_MARKER).exists():
        raise TrainerError("spec.model.source", "is an exported classifier; start from the base model "
                                                "(exported models serve as distillation teachers)")
    hf_cfg = AutoConfig.from_pretrained(model_dir)
    n_blocks = min(cfg.num_layers or hf_cfg.num_hidden_layers, hf_cfg.num_hidden_layers)
    n_layers = n_blocks + 1  # + embeddings
    st = job.strategy
    if st.layer_lr_decay is not None and st.type not in ("fineTune", "progressiveUnfreezing"):
        raise TrainerError("spec.strategy.layerLrDecay", f"applies to fineTune and progressiveUnfreezing, "
                                                         f"not {st.type}; remove it")
    if st.type == "fineTune" and (st.fine_tune.top_k_layers or 0) > n_layers:
        raise TrainerError("spec.strategy.fineTune.topKLayers",
                           f"{st.fine_tune.top_k_layers} > {n_layers} layers of the model (embeddings + {n_blocks} blocks)")
    if st.type == "progressiveUnfreezing" and st.progressive_unfreezing.start_layers > n_layers:
        raise TrainerError("spec.strategy.progressiveUnfreezing.startLayers",
                           f"{st.progressive_unfreezing.start_layers} > {n_layers} layers of the model")
    if st.type == "lora":
        _validate_lora(job, model_dir)
    _, _, val_x, _, labels = datasets.prepare(job.dataset, job.training.seed)
    if cfg.labels is not None:
        extra = sorted(set(map(str, labels)) - set(map(str, cfg.labels)))
        if extra:
            raise TrainerError("spec.dataset.labelColumn", f"labels {extra[:5]} are not in spec.trainer.config.labels "
                                                           f"{cfg.labels}; fix the data or the label list")
    if st.type == "distillation":
        if st.distillation is None:
            raise TrainerError("spec.strategy.distillation", "required when strategy.type is distillation (teacher)")
        teacher_dir = resolve_model_dir(st.distillation.teacher.source, "spec.strategy.distillation.teacher.source")
        if not (teacher_dir / EXPORT_MARKER).exists():
            return  # a base model: the worker fine-tunes it on the task first (teacherSteps)
        meta = json.loads((teacher_dir / EXPORT_MARKER).read_text())
        if [str(x) for x in meta["labels"]] != [str(x) for x in labels]:
            raise TrainerError("spec.strategy.distillation.teacher.source",
                               f"teacher labels {meta['labels']} differ from the dataset's {labels}")
    if st.type == "domainAdaptation":
        if st.domain_adaptation is None:
            raise TrainerError("spec.strategy.domainAdaptation", "required when strategy.type is domainAdaptation")
        target, _ = datasets.load_rows(st.domain_adaptation.target_dataset)
        col = st.domain_adaptation.target_dataset.text_column
        if not target or col not in target[0]:
            raise TrainerError("spec.strategy.domainAdaptation.targetDataset.textColumn",
                               f"column {col!r} not in {st.domain_adaptation.target_dataset.uri!r}")


def _validate_lora(job: JobSpec, model_dir: Path) -> None:
    from transformers import AutoConfig, AutoModel

    lora = job.strategy.lora
    cfg = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        skeleton = AutoModel.from_config(cfg)
    linear: dict[str, tuple[int, int]] = {}
    for name, module in skeleton.named_modules():
        shape = _linear_shape(module)
        if shape is not None:
            linear[name] = shape
    leaf_names = sorted({n.rsplit(".", 1)[-1] for n in linear})
    for target in lora.target_modules:
        hits = [s for n, s in linear.items() if n == target or n.endswith("." + target)]
        if not hits:
            raise TrainerError("spec.strategy.lora.targetModules",
                               f"no linear module named {target!r} in this {cfg.model_type} model; choose from {leaf_names}")
        smallest = min(min(s) for s in hits)
        if lora.rank > smallest:
            raise TrainerError("spec.strategy.lora.rank",
                               f"rank {lora.rank} exceeds the smallest dimension ({smallest}) of {target!r}; "
                               "use a rank below it (typically 4-64)")
    if lora.quantize4bit:
        if job.resources.gpus_per_worker <= 0:
            raise TrainerError("spec.strategy.lora.quantize4bit",
                               "QLoRA (4-bit) needs a GPU: set resources.gpusPerWorker >= 1 or quantize4bit: false")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TrainerError("spec.strategy.lora.quantize4bit",
                               "QLoRA needs the bitsandbytes package in the trainer image; install it or set quantize4bit: false")


# --------------------------------------------------------------------------- training


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:  # type: ignore[override]
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return -ctx.lam * grad, None


def _fine_tune_teacher(teacher_dir: Path, cfg: TextConfig, job: JobSpec, xs: list[str], ys: list[int],
                       n_labels: int, device: torch.device) -> tuple[TextClassifier, Any]:
    """Distilling from a base model: fine-tune it (all layers) on the task first. Deterministic
    (seeded), so a resumed student re-creates the same teacher instead of checkpointing it."""
    from transformers import AutoTokenizer

    tr = job.training
    tok = AutoTokenizer.from_pretrained(teacher_dir)
    backbone = load_backbone(teacher_dir, cfg.teacher_layers)
    teacher = TextClassifier(backbone, backbone.config.hidden_size, n_labels, cfg.pooling, cfg.head_dropout).to(device)
    opt = torch.optim.AdamW(teacher.parameters(), lr=tr.learning_rate, weight_decay=tr.weight_decay)
    steps = cfg.teacher_steps or loop.total_steps(len(xs), tr.batch_size, 1, tr.epochs, tr.max_steps)
    spe = loop.steps_per_epoch(len(xs), tr.batch_size, 1)
    teacher.train()
    for step in range(steps):
        e, b = divmod(step, spe)
        idx = loop.epoch_batches(len(xs), tr.batch_size, tr.seed + 7, e, 0, 1)[b]
        enc = tok([xs[i] for i in idx], padding=True, truncation=True, max_length=tr.max_seq_length,
                  return_tensors="pt")
        logits = teacher(enc["input_ids"].to(device), enc["attention_mask"].to(device))
        loss = F.cross_entropy(logits, torch.tensor([ys[i] for i in idx], device=device))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return teacher, tok


def train_loop_per_worker(config: dict[str, Any]) -> None:
    from transformers import AutoTokenizer

    job, cfg, rank, world, device = loop.start_worker(config, TextConfig)
    tr, st, seed = job.training, job.strategy, job.training.seed
    t_start = time.perf_counter()

    train_x, train_y, val_x, val_y, labels = datasets.prepare(job.dataset, seed)
    val_x, val_y = val_x[: cfg.max_eval_examples], val_y[: cfg.max_eval_examples]
    model_dir = resolve_model_dir(job.model.source)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    teacher: Any = None
    teacher_tok: Any = None
    num_layers = cfg.num_layers
    if st.type == "distillation":
        assert st.distillation is not None
        teacher_dir = resolve_model_dir(st.distillation.teacher.source)
        if (teacher_dir / EXPORT_MARKER).exists():
            teacher, teacher_tok, _ = load_exported(teacher_dir)
        else:
            teacher, teacher_tok = _fine_tune_teacher(teacher_dir, cfg, job, train_x, train_y, len(labels), device)
        teacher.eval().to(device)
        num_layers = cfg.student_layers or num_layers or max(1, teacher.backbone.config.num_hidden_layers // 2)
        loop.seed_everything(seed)  # the student starts from the same RNG state with either teacher
    quantize = st.type == "lora" and st.lora.quantize4bit
    if quantize and not torch.cuda.is_available():
        raise TrainerError("spec.strategy.lora.quantize4bit", "this worker has no GPU; QLoRA needs one")
    backbone: Any = load_backbone(model_dir, num_layers, quantize4bit=quantize, from_scratch=cfg.from_scratch)
    hidden = backbone.config.hidden_size
    model = TextClassifier(backbone, hidden, len(labels), cfg.pooling, cfg.head_dropout)
    heads: list[nn.Module] = [model.head]
    domain_head = None
    if st.type == "domainAdaptation":
        domain_head = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, 1))
        model.add_module("domain_head", domain_head)
        heads.append(domain_head)

    if st.type == "lora":
        from peft import LoraConfig, get_peft_model

        if quantize:
            from peft import prepare_model_for_kbit_training

            backbone = prepare_model_for_kbit_training(backbone)
        lcfg = LoraConfig(r=st.lora.rank, lora_alpha=st.lora.alpha,  # type: ignore[arg-type]
                          lora_dropout=st.lora.dropout, target_modules=list(st.lora.target_modules), bias="none")
        model.backbone = get_peft_model(backbone, lcfg)
        lora_params = [p for p in model.backbone.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": list(model.head.parameters()), "lr": strategies.head_lr(tr)},
                                        {"params": lora_params, "lr": tr.learning_rate}]
        layers: list[nn.Module] = []
    else:
        layers = backbone_layers(backbone)
        for p in model.backbone.parameters():  # e.g. BERT's unused pooler stays frozen
            p.requires_grad_(False)
        strategies.set_trainable(layers, model.head, strategies.trainable_top_layers(st, len(layers), 0.0))
        for h in heads:
            h.requires_grad_(True)
        groups = strategies.param_groups(layers, heads, st, tr)
    model.to(device)
    optimizer = strategies.make_optimizer(groups, tr)
    n_params = sum(p.numel() for p in model.parameters())
    # Progressive unfreezing starts with few trainable layers: count what trains by the end.
    n_trainable_final = sum(p.numel() for g in groups for p in g["params"])

    target_x: list[str] = []
    target_y: list[int] | None = None
    if st.type == "domainAdaptation":
        assert st.domain_adaptation is not None
        tds = st.domain_adaptation.target_dataset
        rows, _ = datasets.load_rows(tds)
        if tds.max_examples:
            rows = rows[: tds.max_examples]
        target_x = [r[tds.text_column] for r in rows]
        index = {lab: i for i, lab in enumerate(labels)}
        if rows and tds.label_column in rows[0] and all(r[tds.label_column] in index for r in rows):
            target_y = [index[r[tds.label_column]] for r in rows]  # only reported, never trained on

    # Plain (bucketed) all-reduce instead of DDP: DDP fixes its parameter set at wrap time,
    # which progressive unfreezing changes during the run.
    def token_counts(xs: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(xs, truncation=True, max_length=tr.max_seq_length)["input_ids"]]

    lengths = token_counts(train_x) if cfg.group_by_length else None
    if cfg.group_by_length:  # evaluation in order of length too: the same sums, less padding
        val_len = token_counts(val_x)
        order = sorted(range(len(val_x)), key=lambda i: val_len[i])
        val_x, val_y = [val_x[i] for i in order], [val_y[i] for i in order]
    run = loop.TrainLoop(config, job, len(train_x), rank, world, model, optimizer, average_grads=True,
                         lengths=lengths, checkpoint_extra={"labels": labels})
    run.resume()

    def encode(texts: list[str], tok: Any = tokenizer) -> dict[str, torch.Tensor]:
        enc = tok(texts, padding=True, truncation=True, max_length=tr.max_seq_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}

    def evaluate(xs: list[str], ys: list[int]) -> tuple[float, float]:
        model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad(), loop.autocast(tr.mixed_precision):
            for i in range(0, len(xs), cfg.eval_batch_size):
                logits = model(**encode(xs[i : i + cfg.eval_batch_size])).float()
                yb = torch.tensor(ys[i : i + cfg.eval_batch_size], device=device)
                loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
                correct += int((logits.argmax(-1) == yb).sum())
        return loss_sum / max(1, len(xs)), correct / max(1, len(xs))

    def validation() -> dict[str, float]:
        val_loss, val_acc = evaluate(val_x, val_y)
        return {"val_loss": val_loss, "val_accuracy": val_acc}

    def export(out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        meta = {"trainer": NAME, "labels": labels, "pooling": cfg.pooling, "base": str(model_dir),
                "num_layers": model.backbone.config.num_hidden_layers if st.type != "lora" else num_layers,
                "lora": st.type == "lora", "strategy": st.type, "format": "adapter" if st.type == "lora" else "full"}
        if st.type == "lora":
            model.backbone.save_pretrained(out / "adapter")
        else:
            model.backbone.save_pretrained(out / "backbone")
        torch.save(model.head.state_dict(), out / "head.pt")
        tokenizer.save_pretrained(out / "tokenizer")
        (out / EXPORT_MARKER).write_text(json.dumps(meta, indent=2))

    target_spe = max(1, len(target_x) // world // tr.batch_size) if target_x else 1
    backbone_frozen = st.type == "featureExtraction"

    def train_step(idx: list[int]) -> tuple[torch.Tensor, int | None]:
        step = run.step
        if st.type == "progressiveUnfreezing":
            strategies.set_trainable(layers, model.head, strategies.trainable_top_layers(st, len(layers), step / run.spe))
        model.train()
        if teacher is not None:
            teacher.eval()
        yb = torch.tensor([train_y[i] for i in idx], device=device)
        texts = [train_x[i] for i in idx]
        with loop.autocast(tr.mixed_precision):
            batch = encode(texts)
            if backbone_frozen:
                with torch.no_grad():
                    feats = model.features(**batch)
                logits = model.head(model.dropout(feats))
            elif domain_head is not None:
                feats = model.features(**batch)
                logits = model.head(model.dropout(feats))
            else:
                logits = model(**batch)
            loss = F.cross_entropy(logits.float(), yb)
            if teacher is not None and st.distillation is not None:
                with torch.no_grad():
                    t_logits = teacher(**encode(texts, teacher_tok)).float()
                temp, alpha = st.distillation.temperature, st.distillation.alpha
                kd = F.kl_div(F.log_softmax(logits.float() / temp, -1), F.softmax(t_logits / temp, -1),
                              reduction="batchmean") * temp * temp
                loss = alpha * kd + (1 - alpha) * loss
            if domain_head is not None and st.domain_adaptation is not None:
                t_epoch, t_b = divmod(step, target_spe)
                t_idx = loop.epoch_batches(len(target_x), tr.batch_size, seed + 1, t_epoch, rank, world)[t_b]
                t_feats = model.features(**encode([target_x[i] for i in t_idx]))
                p = step / max(1, run.total)
                lam = st.domain_adaptation.adversarial_weight * (2 / (1 + math.exp(-10 * p)) - 1)
                both = torch.cat([feats, t_feats])
                dom = domain_head(_GradReverse.apply(both, lam)).squeeze(-1).float()
                dom_y = torch.cat([torch.zeros(len(feats)), torch.ones(len(t_feats))]).to(device)
                loss = loss + F.binary_cross_entropy_with_logits(dom, dom_y)
        loss.backward()
        return loss, int(batch["attention_mask"].sum())

    run.run(train_step, validation)
    if run.stopped:
        return
    final = {**run.final_metrics(), **validation(), "trainable_params": n_trainable_final,
             "total_params": n_params, "majority_accuracy": loop.majority_accuracy(train_y, val_y),
             "wall_s": time.perf_counter() - t_start, "labels": [str(x) for x in labels]}
    if target_y is not None:
        _, final["target_accuracy"] = evaluate(target_x[: cfg.max_eval_examples], target_y[: cfg.max_eval_examples])
    run.finish(final, export)


TRAINER = Recipe(NAME, TextConfig, validate, train_loop_per_worker)
