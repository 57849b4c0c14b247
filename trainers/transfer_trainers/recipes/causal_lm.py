"""Recipe `causal-lm`: supervised fine-tuning of a Hugging Face causal LM (transformers, peft).

Data: JSON Lines (or any table) of `prompt`/`completion`, chat `messages` or plain `text`, or a
labelled table turned into instructions by `promptTemplate` (see sft.py); the loss is on the
completion only. Strategies: `fineTune` (all layers, or the top `topKLayers`), `lora`, and
`lora.quantize4bit` (QLoRA, GPU only). Runs in Ray Train's TorchTrainer; the model goes through
`ray.train.torch.prepare_model`, i.e. DDP across workers (the trainable set never changes here,
unlike progressive unfreezing in the classifier recipe).

Our own loop rather than HF Trainer / TRL's SFTTrainer: the checkpoint layout, data order and
resume rules (loop.py) are the ones the operator relies on for every recipe, and the loop is
short. Generated-answer accuracy (greedy decoding, answer starts with the expected completion)
is measured before training (`zero_shot_accuracy`) and after (`val_accuracy`).
"""

from __future__ import annotations

import importlib.util
import json
import resource
import time
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from transfer_trainers import datasets, loop, sft
from transfer_trainers.contract import Recipe, TrainerError, parse_config
from transfer_trainers.sources import EXPORT_MARKER, ModelRef, resolve_model
from transfer_trainers.spec import JobSpec, StrictWire

NAME = "causal-lm"
STRATEGIES = ("fineTune", "lora")


class CausalLMConfig(StrictWire):
    """`spec.trainer.config` of this trainer."""

    prompt_template: str | None = Field(None, description="turn textColumn/labelColumn rows into instructions: "
                                        "the prompt is this template ({text} = the text column), the answer the label")
    system_prompt: str | None = Field(None, description="with promptTemplate: a system message before each prompt")
    lora_layers: int | None = Field(None, gt=0, description="LoRA on the top k decoder blocks only: backward "
                                    "then stops at the lowest adapted block (faster on CPU; default all)")
    max_new_tokens: int = Field(8, gt=0, le=512, description="tokens generated per answer when measuring accuracy")
    max_eval_examples: int = Field(200, gt=0)
    eval_batch_size: int = Field(16, gt=0)
    zero_shot: bool = Field(True, description="measure the base model's answers before training")
    output_format: Literal["adapter", "merged", "full"] | None = Field(
        None, description="what model/ holds: the LoRA adapter (default for lora), the merged weights, "
        "or the full model (default for fineTune)")


def _config(job: JobSpec) -> CausalLMConfig:
    return parse_config(CausalLMConfig, job)


def output_format(job: JobSpec, cfg: CausalLMConfig) -> str:
    fmt = (job.output.format if job.output else None) or cfg.output_format
    return fmt or ("adapter" if job.strategy.type == "lora" else "full")


# --------------------------------------------------------------------------- model


def load_tokenizer(ref: ModelRef) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref.directory, **ref.load_kwargs())
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(ref: ModelRef, quantize4bit: bool = False) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32, **ref.load_kwargs()}
    if quantize4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.bfloat16)
    return AutoModelForCausalLM.from_pretrained(ref.directory, **kwargs)


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """Bottom to top: the token embeddings, then each decoder block (the final norm and LM head
    train with the top block)."""
    n = model.config.num_hidden_layers
    blocks = next(m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n)
    return [model.get_input_embeddings(), *blocks]


def set_trainable(model: Any, job: JobSpec) -> None:
    """fineTune: the top k layers (all by default); the LM head is tied to the embeddings in
    most small LMs, so it trains only when the embeddings do."""
    layers = decoder_layers(model)
    k = job.strategy.fine_tune.top_k_layers
    top = len(layers) if k is None else min(k, len(layers))
    model.requires_grad_(False)
    for layer in layers[len(layers) - top:]:
        layer.requires_grad_(True)
    if top and not model.config.tie_word_embeddings:
        model.get_output_embeddings().requires_grad_(True)
    if top:
        for name, module in model.named_modules():
            if name.endswith(".norm") and name.count(".") == 1:  # model.norm: the final norm
                module.requires_grad_(True)


def add_lora(model: Any, job: JobSpec, top_layers: int | None = None) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = job.strategy.lora
    n = model.config.num_hidden_layers
    layers = list(range(n - min(top_layers, n), n)) if top_layers else None
    if lora.quantize4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    cfg = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,  # type: ignore[arg-type]
                     target_modules=list(lora.target_modules), bias="none", task_type="CAUSAL_LM",
                     layers_to_transform=layers)
    return get_peft_model(model, cfg)


# --------------------------------------------------------------------------- validation


def validate(job: JobSpec) -> None:
    """Everything that can be checked on the driver, before any Ray worker starts."""
    from transformers import AutoConfig, AutoModelForCausalLM

    loop.quiet_libraries()
    if job.model.task != "causalLM":
        raise TrainerError("spec.model.task", f"{NAME} trains causalLM, not {job.model.task}; set task: causalLM "
                                              "or use trainer text-classification")
    cfg = _config(job)
    st = job.strategy
    if st.type not in STRATEGIES:
        raise TrainerError("spec.strategy.type", f"{NAME} supports {list(STRATEGIES)}, not {st.type}")
    if st.layer_lr_decay is not None:
        raise TrainerError("spec.strategy.layerLrDecay", f"not supported by {NAME}; remove it")
    if st.type == "lora" and st.lora.quantize4bit:
        if job.resources.gpus_per_worker <= 0:
            raise TrainerError("spec.strategy.lora.quantize4bit", "QLoRA (4-bit) needs a GPU: set "
                               "resources.gpusPerWorker >= 1 on a GPU machine, or quantize4bit: false")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TrainerError("spec.strategy.lora.quantize4bit", "QLoRA needs the bitsandbytes package in the "
                               "trainer image; install it or set quantize4bit: false")
    if output_format(job, cfg) == "adapter" and st.type != "lora":
        raise TrainerError("spec.output.format", "adapter needs strategy lora; use full (or merged under lora)")
    ref = resolve_model(job.model.source)
    if (ref.directory / EXPORT_MARKER).exists():
        raise TrainerError("spec.model.source", "is a model exported by a run; start from its base model")
    if ref.gguf_file and importlib.util.find_spec("gguf") is None:
        raise TrainerError("spec.model.source", f"{ref.gguf_file} is a GGUF file and transformers reads those "
                           "with the gguf package: pip install gguf (the `llm` extra of transfer-operator)")
    hf_cfg = AutoConfig.from_pretrained(ref.directory, **ref.load_kwargs())
    n_layers = hf_cfg.num_hidden_layers + 1
    if st.type == "fineTune" and (st.fine_tune.top_k_layers or 0) > n_layers:
        raise TrainerError("spec.strategy.fineTune.topKLayers", f"{st.fine_tune.top_k_layers} > {n_layers} layers "
                           f"(embeddings + {hf_cfg.num_hidden_layers} blocks)")
    if st.type == "lora":
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(hf_cfg)
        linear = {n: (m.in_features, m.out_features) for n, m in skeleton.named_modules()
                  if isinstance(m, torch.nn.Linear)}
        names = sorted({n.rsplit(".", 1)[-1] for n in linear} - {"lm_head"})
        for target in st.lora.target_modules:
            hits = [s for n, s in linear.items() if n == target or n.endswith("." + target)]
            if not hits:
                raise TrainerError("spec.strategy.lora.targetModules",
                                   f"no linear module named {target!r} in this {hf_cfg.model_type} model; "
                                   f"choose from {names}")
            if st.lora.rank > min(min(s) for s in hits):
                raise TrainerError("spec.strategy.lora.rank", f"rank {st.lora.rank} exceeds a dimension of {target!r}")
    rows, val_rows = datasets.load_rows(job.dataset)
    train, val = sft.split_examples(rows, val_rows, job.dataset, cfg.prompt_template, job.training.seed,
                                    cfg.system_prompt)
    if not train:
        raise TrainerError("spec.dataset.maxExamples", "no training examples are left")
    if not val:
        raise TrainerError("spec.dataset.splits.validationFraction", "no validation examples: raise it above 0 "
                           "or give a validation split")


# --------------------------------------------------------------------------- training


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _unwrap(model: Any) -> Any:
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def train_loop_per_worker(config: dict[str, Any]) -> None:
    job, cfg, rank, world, device = loop.start_worker(config, CausalLMConfig)
    tr, st, seed = job.training, job.strategy, job.training.seed
    t_start = time.perf_counter()

    rows, val_rows = datasets.load_rows(job.dataset)
    train, val = sft.split_examples(rows, val_rows, job.dataset, cfg.prompt_template, seed, cfg.system_prompt)
    val = val[: cfg.max_eval_examples]
    ref = resolve_model(job.model.source)
    tokenizer = load_tokenizer(ref)
    quantize = st.type == "lora" and st.lora.quantize4bit
    if quantize and not torch.cuda.is_available():
        raise TrainerError("spec.strategy.lora.quantize4bit", "this worker has no GPU; QLoRA needs one")
    net: Any = load_model(ref, quantize4bit=quantize)
    if st.type == "lora":
        net = add_lora(net, job, cfg.lora_layers)
    else:
        set_trainable(net, job)
    if not quantize:
        net.to(device)
    train_ids = [sft.encode(tokenizer, ex, tr.max_seq_length) for ex in train]
    val_ids = [sft.encode(tokenizer, ex, tr.max_seq_length) for ex in val]
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    n_trainable, n_total = loop.trainable_counts(net)

    zero_shot: float | None = None
    state = loop.resume_state(config, seed)
    if state is not None:
        net.load_state_dict(state["trainable"], strict=False)
        zero_shot = state.get("zero_shot_accuracy")
    elif cfg.zero_shot and rank == 0:
        zero_shot = sft.answer_accuracy(_answers(net, tokenizer, val, cfg, device), val)

    model: Any = net
    if not config.get("in_process"):
        import ray.train.torch

        model = ray.train.torch.prepare_model(net, move_to_device=False)
    optimizer = torch.optim.AdamW([p for _, p in trainable], lr=tr.learning_rate, weight_decay=tr.weight_decay)

    def model_state() -> dict[str, Any]:
        params = dict(_unwrap(model).named_parameters())
        return {"trainable": {n: params[n].detach().cpu() for n, _ in trainable}, "zero_shot_accuracy": zero_shot}

    # DDP (prepare_model) averages the gradients during backward: no all-reduce after it.
    run = loop.TrainLoop(config, job, len(train_ids), rank, world, model, optimizer, model_state=model_state)
    run.restore(state)

    def val_loss() -> float:
        model.eval()
        total_loss, total_tokens = 0.0, 0
        with torch.no_grad(), loop.autocast(tr.mixed_precision):
            for i in range(0, len(val_ids), cfg.eval_batch_size):
                batch = {k: v.to(device) for k, v in sft.collate(val_ids[i : i + cfg.eval_batch_size],
                                                                 tokenizer.pad_token_id).items()}
                n = int((batch["labels"][:, 1:] != sft.IGNORE).sum())
                total_loss += float(_unwrap(model)(**batch).loss) * n
                total_tokens += n
        return total_loss / max(1, total_tokens)

    def export(out: Path) -> None:
        write_model(out, _unwrap(model), tokenizer, job, ref, output_format(job, cfg),
                    {"prompt_template": cfg.prompt_template, "system_prompt": cfg.system_prompt,
                     "max_new_tokens": cfg.max_new_tokens})

    def train_step(idx: list[int]) -> tuple[torch.Tensor, int | None]:
        batch = {k: v.to(device) for k, v in sft.collate([train_ids[i] for i in idx], tokenizer.pad_token_id).items()}
        model.train()
        with loop.autocast(tr.mixed_precision):
            loss = model(**batch).loss
        loss.backward()
        return loss, int(batch["attention_mask"].sum())

    run.run(train_step, lambda: {"val_loss": val_loss()})
    if run.stopped:
        return

    final: dict[str, Any] = {**run.final_metrics(), "val_loss": val_loss(),
                             "trainable_params": n_trainable, "total_params": n_total,
                             "zero_shot_accuracy": zero_shot, "majority_accuracy": sft.majority_accuracy(train, val)}
    if rank == 0:
        final["val_accuracy"] = sft.answer_accuracy(_answers(_unwrap(model), tokenizer, val, cfg, device), val)
    final.update(wall_s=time.perf_counter() - t_start, peak_rss_mb=_peak_rss_mb())
    run.finish(final, export)


def _answers(model: Any, tokenizer: Any, examples: list[sft.Example], cfg: CausalLMConfig,
             device: torch.device) -> list[str]:
    prompts = [ex.prompt or [{"role": "user", "content": ""}] for ex in examples]
    return sft.generate(model, tokenizer, prompts, cfg.max_new_tokens, device, cfg.eval_batch_size)


# --------------------------------------------------------------------------- export / reload


def write_model(out: Path, model: Any, tokenizer: Any, job: JobSpec, ref: ModelRef, fmt: str,
                prompting: dict[str, Any] | None = None) -> None:
    """out/ gets the model in `fmt`, the tokenizer and transfer_model.json (what `load_output` reads;
    `prompting`: how the run posed its prompts, so `transferctl predict` poses them the same way)."""
    out.mkdir(parents=True, exist_ok=True)
    is_peft = hasattr(model, "peft_config")
    if fmt == "adapter":
        if not is_peft:
            raise TrainerError("spec.output.format", "adapter needs strategy lora; use merged or full")
        model.save_pretrained(out / "adapter")
    else:
        merged = model.merge_and_unload() if is_peft else model
        merged.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "tokenizer")
    meta = {"trainer": NAME, "format": fmt, "base": job.model.source, "base_dir": str(ref.directory),
            "gguf_file": ref.gguf_file, "strategy": job.strategy.type, **(prompting or {})}
    (out / EXPORT_MARKER).write_text(json.dumps(meta, indent=2))


def load_output(directory: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, metadata) of a directory written by `write_model`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = json.loads((directory / EXPORT_MARKER).read_text())
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    if meta["format"] == "adapter":
        from peft import PeftModel

        local = ModelRef(Path(meta["base_dir"]), meta.get("gguf_file"))
        # The base where the run found it (same machine), else resolved again from its source.
        base = load_model(local if local.directory.is_dir() else resolve_model(meta["base"]))
        model: Any = PeftModel.from_pretrained(base, directory / "adapter")
    else:
        model = AutoModelForCausalLM.from_pretrained(directory / "model", dtype=torch.float32)
    return model.eval(), tokenizer, meta


TRAINER = Recipe(NAME, CausalLMConfig, validate, train_loop_per_worker)
