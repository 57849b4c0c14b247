"""Supervised fine-tuning data for causal LMs: rows -> examples -> token ids with the loss mask.

A row of `spec.dataset` is one of (checked in this order):
- `messages`: a chat, `[{"role": "user"|"system"|"assistant", "content": ...}, ...]`, whose last
  message is the assistant's answer (the completion);
- `prompt` + `completion` columns;
- `textColumn` + `labelColumn` with `spec.trainer.config.promptTemplate` set: the prompt is the
  template filled with the row (`{text}` is the text column), the completion is the label
  (classification as instruction following);
- `textColumn` alone: plain text, the loss is on every token.

With a chat template (instruct models) the prompt is rendered as a user turn plus the
generation prompt, the completion as the rest of the rendered assistant turn (its end-of-turn
token included, so the model learns to stop). The loss is on completion tokens only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import torch

from transfer_trainers.spec import DatasetSpec, SpecError

IGNORE = -100  # label of the tokens that carry no loss (prompt, padding)


@dataclass(frozen=True)
class Example:
    prompt: list[dict[str, str]] | None  # chat messages before the answer; None: plain text
    completion: str


def row_kind(row: dict[str, Any], ds: DatasetSpec, template: str | None) -> str:
    if "messages" in row:
        return "messages"
    if "prompt" in row and "completion" in row:
        return "prompt"
    if template is not None and ds.text_column in row and ds.label_column in row:
        return "template"
    if template is None and ds.text_column in row:
        return "text"
    cols = sorted(row)
    if template is not None:
        raise SpecError("spec.dataset.textColumn", f"promptTemplate needs columns {ds.text_column!r} and "
                                                   f"{ds.label_column!r}; the rows have {cols}")
    raise SpecError("spec.dataset.textColumn", f"rows need `messages`, `prompt` + `completion`, or the text "
                                               f"column {ds.text_column!r}; they have {cols}")


def to_example(row: dict[str, Any], kind: str, ds: DatasetSpec, template: str | None,
               system: str | None = None) -> Example:
    if kind == "messages":
        msgs = row["messages"]
        if not msgs or msgs[-1].get("role") != "assistant":
            raise SpecError("spec.dataset.uri", "each `messages` list must end with the assistant's answer")
        return Example([{"role": m["role"], "content": m["content"]} for m in msgs[:-1]], msgs[-1]["content"])
    if kind == "prompt":
        return Example([{"role": "user", "content": str(row["prompt"])}], str(row["completion"]))
    if kind == "template":
        assert template is not None
        fields = {**{k: v for k, v in row.items() if isinstance(k, str)}, "text": row[ds.text_column]}
        try:
            prompt = template.format(**fields)
        except (KeyError, IndexError) as exc:
            raise SpecError("spec.trainer.config.promptTemplate", f"names a column the rows lack: {exc}") from None
        head = [{"role": "system", "content": system}] if system else []
        return Example([*head, {"role": "user", "content": prompt}], str(row[ds.label_column]))
    return Example(None, str(row[ds.text_column]))


def split_examples(rows: list[dict[str, Any]], val_rows: list[dict[str, Any]] | None, ds: DatasetSpec,
                   template: str | None, seed: int, system: str | None = None) -> tuple[list[Example], list[Example]]:
    """(train, validation); without a validation split, `validationFraction` of the rows (seeded)."""
    if not rows:
        raise SpecError("spec.dataset.uri", f"{ds.uri!r} has no training rows")
    kind = row_kind(rows[0], ds, template)
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    if val_rows is None:
        n_val = int(round(len(rows) * ds.splits.validation_fraction))
        val_rows, rows = rows[:n_val], rows[n_val:]
    if ds.max_examples:
        rows = _balanced(rows, kind, ds, ds.max_examples)
    return ([to_example(r, kind, ds, template, system) for r in rows],
            [to_example(r, row_kind(r, ds, template), ds, template, system) for r in val_rows])


def _balanced(rows: list[dict[str, Any]], kind: str, ds: DatasetSpec, n: int) -> list[dict[str, Any]]:
    """The first n rows, round-robin over labels when the completion is a label."""
    if kind != "template":
        return rows[:n]
    by_label: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        by_label.setdefault(r[ds.label_column], []).append(r)
    queues, i = list(by_label.values()), 0
    out: list[dict[str, Any]] = []
    while len(out) < min(n, len(rows)):
        if queues[i % len(queues)]:
            out.append(queues[i % len(queues)].pop(0))
        i += 1
    return out


def prompt_text(tokenizer: Any, prompt: list[dict[str, str]]) -> str:
    """The prompt as the model sees it, up to where the answer starts."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return "\n".join(m["content"] for m in prompt) + "\n"


def encode(tokenizer: Any, ex: Example, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): labels are IGNORE on the prompt; a long prompt loses its start."""
    if ex.prompt is None:
        ids = tokenizer(ex.completion, add_special_tokens=True)["input_ids"] + [tokenizer.eos_token_id]
        ids = ids[:max_length]
        return ids, list(ids)
    head = prompt_text(tokenizer, ex.prompt)
    if tokenizer.chat_template:
        full = tokenizer.apply_chat_template([*ex.prompt, {"role": "assistant", "content": ex.completion}],
                                             tokenize=False)
        tail = full[len(head):] if full.startswith(head) else ex.completion + (tokenizer.eos_token or "")
    else:
        tail = ex.completion + (tokenizer.eos_token or "")
    p = tokenizer(head, add_special_tokens=False)["input_ids"]
    c = tokenizer(tail, add_special_tokens=False)["input_ids"][:max_length]
    p = p[max(0, len(p) + len(c) - max_length):]
    return p + c, [IGNORE] * len(p) + c


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], max_new_tokens: int,
             device: torch.device | str = "cpu", batch_size: int = 16) -> list[str]:
    """Greedy answers to chat prompts (left-padded batches), special tokens stripped."""
    model.eval()
    answers: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [prompt_text(tokenizer, p) for p in prompts[i : i + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            answers += [s.strip() for s in tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:],
                                                                  skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
    return answers


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", s.lower())).strip()


def matches(answer: str, expected: str) -> bool:
    """The answer starts with the expected words ("Fresh." matches "fresh"; "freshly" does not)."""
    a, e = _norm(answer), _norm(expected)
    return bool(e) and (a == e or a.startswith(e + " "))


def answer_accuracy(answers: list[str], examples: list[Example]) -> float:
    if not examples:
        return 0.0
    return sum(matches(a, ex.completion) for a, ex in zip(answers, examples, strict=True)) / len(examples)


def majority_accuracy(train: list[Example], val: list[Example]) -> float:
    """Accuracy of always answering the most common training completion."""
    if not train or not val:
        return 0.0
    counts: dict[str, int] = {}
    for ex in train:
        counts[_norm(ex.completion)] = counts.get(_norm(ex.completion), 0) + 1
    top = max(counts, key=lambda k: counts[k])
    return sum(_norm(ex.completion) == top for ex in val) / len(val)
