"""The one JSONL row format, and how a row becomes input ids and labels.

Each line of a JSONL file is one JSON object in one of three shapes:

- `{"prompt": "...", "response": "..."}`: an instruction and its answer;
- `{"messages": [{"role": "user", "content": "..."}, ..., {"role": "assistant", "content": "..."}]}`:
  a chat; the last message must be the assistant's;
- `{"text": "..."}`: plain text (general prose, or domain text for continued pre-training).

Extra keys are kept (e.g. `topic` on general probes). The loss covers the response only (the final
assistant turn); for `text` rows it covers every token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeadapt.core.errors import UserError
from edgeadapt.core.files import write_bytes_atomic

IGNORE_INDEX = -100  # label value the loss skips (transformers' convention)
ROLES = ("system", "user", "assistant")


def read_jsonl(path: str | Path, probes: bool = False) -> list[dict[str, Any]]:
    """Read and validate a JSONL file; an error names file:line and what is wrong.

    With `probes`, rows are general probes: `{"prompt": "...", "topic": "..."}`.
    """
    path = Path(path)
    rows = []
    for number, row in jsonl_lines(path):
        problem = probe_problem(row) if probes else row_problem(row)
        if problem:
            raise UserError(f"{path}:{number}: {problem}")
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: the dataset is empty (no JSON lines).")
    return rows


def jsonl_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-blank line; a line that is not UTF-8 or not JSON is an error
    that names file:line, and where in the line."""
    if not path.is_file():
        raise UserError(f"Data file not found: {path}")
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(
                    f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                    "save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                ends = exc.pos >= len(line.rstrip())  # the decoder ran out: the line stops too early
                what = (
                    "the line ends before the JSON does (cut off?)"
                    if ends
                    else f"{exc.msg} at column {exc.colno}"
                )
                raise UserError(f"{path}:{number}: not valid JSON: {what}") from None
            except RecursionError:
                raise UserError(f"{path}:{number}: not valid JSON (nested too deeply)") from None


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as JSONL, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_bytes_atomic(path, text.encode("utf-8"), durable=False)


def row_problem(row: Any) -> str | None:
    """Why a row is malformed, or None when it is fine."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                return f"messages[{i}] must be an object with a string 'content'"
            if message.get("role") not in ROLES:
                return f"messages[{i}].role must be one of {', '.join(ROLES)}, got {message.get('role')!r}"
        if messages[-1]["role"] != "assistant":
            return "the last message must have role 'assistant' (it is what the model learns to answer)"
        return None
    if "prompt" in row or "response" in row:
        for key in ("prompt", "response"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                return f"'{key}' must be a non-empty string"
        return None
    if "text" in row:
        return (
            None
            if isinstance(row["text"], str) and row["text"].strip()
            else "'text' must be a non-empty string"
        )
    return "a row needs 'prompt' and 'response', 'messages', or 'text'"


def probe_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for key in ("prompt", "topic"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            return f"a probe needs a non-empty string '{key}'"
    return None


def split_row(row: dict[str, Any]) -> tuple[list[dict[str, str]] | None, str]:
    """(prompt messages, target text); prompt is None for a plain text row."""
    if "messages" in row:
        return row["messages"][:-1], row["messages"][-1]["content"]
    if "prompt" in row:
        return [{"role": "user", "content": row["prompt"]}], row["response"]
    return None, row["text"]


def prompt_text(row: dict[str, Any]) -> str:
    """What the user asked in a prompt/response or messages row (its last user turn), for display."""
    messages = split_row(row)[0] or []
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else ""


def reference(row: dict[str, Any]) -> str:
    """The answer a row expects: its response, or its final assistant message."""
    return split_row(row)[1]


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the prompt, ending where the model's answer starts."""
    if tokenizer.chat_template:
        return list(
            tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )
    text = "\n".join(m["content"] for m in messages) + "\n"
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def encode(tokenizer, row: dict[str, Any], max_length: int) -> dict[str, list[int]]:
    """Input ids and labels for one row, with the loss on the response only."""
    messages, target = split_row(row)
    if messages is None:
        ids = tokenizer(target, add_special_tokens=True)["input_ids"][:max_length]
        return {"input_ids": ids, "labels": list(ids)}
    prefix = prompt_ids(tokenizer, messages)
    full = None
    if tokenizer.chat_template:
        conversation = messages + [{"role": "assistant", "content": target}]
        full = list(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=False))
    if full is None or full[: len(prefix)] != prefix:
        # No template, or a template that renders the prompt differently once answered: append the answer.
        answer = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        full = prefix + answer
    answer = full[len(prefix) :][:max_length]
    # Too long: drop prompt tokens from the start, so the response (what is learned and scored) stays whole.
    keep = max_length - len(answer)
    prompt = prefix[max(0, len(prefix) - keep) :] if keep > 0 else []
    return {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}


def text_chunks(tokenizer, texts: list[str], chunk_tokens: int, count: int) -> list[dict[str, list[int]]]:
    """`count` chunks of exactly `chunk_tokens` tokens from the texts joined by EOS (a perplexity set)."""
    stream: list[int] = []
    needed = chunk_tokens * count
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(stream) >= needed:
            break
    if len(stream) < chunk_tokens:
        raise UserError(f"Not enough general text for one chunk of {chunk_tokens} tokens.")
    chunks = [
        stream[i : i + chunk_tokens]
        for i in range(0, min(len(stream), needed) - chunk_tokens + 1, chunk_tokens)
    ]
    return [{"input_ids": c, "labels": list(c)} for c in chunks]
