import json
from collections import Counter

import pytest

from edgeadapt.core.errors import UserError
from edgeadapt.data import packs
from edgeadapt.data.format import IGNORE_INDEX, encode, read_jsonl, text_chunks


def write(tmp_path, lines):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"prompt": "q"}', "'response' must be a non-empty string"),
        ('{"messages": [{"role": "user", "content": "q"}]}', "last message must have role 'assistant'"),
        ('{"messages": [{"role": "bot", "content": "q"}]}', "role must be one of"),
        ('{"foo": 1}', "needs 'prompt' and 'response', 'messages', or 'text'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, ['{"text": "fine"}', line])
    with pytest.raises(UserError, match=rf"rows.jsonl:2: .*{message}"):
        read_jsonl(path)


def test_empty_dataset_is_an_error(tmp_path):
    with pytest.raises(UserError, match="empty"):
        read_jsonl(write(tmp_path, [""]))


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_three_row_shapes_are_accepted(tmp_path):
    rows = read_jsonl(
        write(
            tmp_path,
            [
                '{"prompt": "q", "response": "a"}',
                '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
                '{"text": "plain"}',
            ],
        )
    )
    assert len(rows) == 3


def test_loss_covers_the_response_only(tokenizer):
    row = {"prompt": "What is 2+2?", "response": "4"}
    out = encode(tokenizer, row, 512)
    prompt_len = len(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": row["prompt"]}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
    )
    assert out["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    scored = [t for t in out["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(scored).startswith("4<|im_end|>")


def test_messages_and_prompt_rows_encode_alike(tokenizer):
    a = encode(tokenizer, {"prompt": "hi", "response": "yo"}, 512)
    b = encode(
        tokenizer,
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        512,
    )
    assert a == b


def test_text_rows_are_scored_everywhere_and_truncated(tokenizer):
    out = encode(tokenizer, {"text": "abcdefgh"}, 5)
    assert out["labels"] == out["input_ids"] and len(out["input_ids"]) == 5


def test_a_long_prompt_loses_its_start_and_keeps_the_whole_response(tokenizer):
    row = {"prompt": "x" * 300, "response": "the answer"}
    full = encode(tokenizer, row, 4096)
    cut = encode(tokenizer, row, 64)
    answer = [t for t in full["labels"] if t != IGNORE_INDEX]
    assert len(cut["input_ids"]) == 64 and [t for t in cut["labels"] if t != IGNORE_INDEX] == answer
    assert cut["input_ids"] == full["input_ids"][-64:]
    tiny = encode(tokenizer, row, 4)  # shorter than the response: its first tokens only
    assert tiny["labels"] == tiny["input_ids"] == answer[:4]


def test_text_chunks_have_exact_length(tokenizer):
    chunks = text_chunks(tokenizer, ["a" * 50, "b" * 50], chunk_tokens=16, count=4)
    assert len(chunks) == 4 and all(len(c["input_ids"]) == 16 for c in chunks)


@pytest.fixture(scope="module")
def built():
    return {
        name: {
            split: packs.load_split(packs.build(name, 0), split)
            for split in (packs.GENERAL_FILES if name == "general" else packs.DOMAIN_SPLITS)
        }
        for name in packs.PACKS
    }


def test_medical_test_categories_appear_in_training_with_other_diagnoses(built):
    med = built["medical"]
    train_categories = {r["category"] for r in med["train"]}
    assert all(r["category"] in train_categories for r in med["test"])
    assert not {r["prompt"] for r in med["test"]} & {r["prompt"] for r in med["train"]}
    assert all(r["response"].startswith(r["category"] + " ") for r in med["test"])


def test_legal_test_licenses_are_unseen_and_balanced(built):
    legal = built["legal"]
    assert not {r["license"] for r in legal["test"]} & {r["license"] for r in legal["train"]}
    counts = Counter(r["response"] for r in legal["test"])
    assert set(counts) == set(packs.LEGAL_CATEGORIES) and len(set(counts.values())) == 1


def test_math_answers_are_exact_and_prompts_unique(built):
    rows = built["math"]["train"] + built["math"]["test"] + built["math"]["val"]
    assert len({r["prompt"] for r in rows}) == len(rows)
    for row in rows[:200]:
        if row["prompt"].startswith("What is "):
            expr = row["prompt"].removeprefix("What is ").rstrip("?")
            assert str(eval(expr)) == row["response"]  # noqa: S307 - our own generated arithmetic


def test_general_pack_has_prose_and_130_probes_over_13_topics(built):
    general = built["general"]
    topics = Counter(r["topic"] for r in general["probes"])
    assert len(topics) == 13 and set(topics.values()) == {10}  # ten probes per topic
    assert not {"medicine", "law", "mathematics"} & set(topics)  # the trained domains are left out
    assert len(general["text"]) == 600 and all(len(r["text"].split()) >= 40 for r in general["text"])


def test_packs_are_deterministic_for_a_seed(tmp_path):
    a = packs.build("medical", 3, tmp_path / "a")
    b = packs.build("medical", 3, tmp_path / "b")
    c = packs.build("medical", 4, tmp_path / "c")
    assert (a / "test.jsonl").read_text() == (b / "test.jsonl").read_text()
    assert (a / "test.jsonl").read_text() != (c / "test.jsonl").read_text()
    assert json.loads((a / "meta.json").read_text())["rows"]["test"] == 64


def test_unknown_pack_suggests_the_closest(tmp_path):
    with pytest.raises(UserError, match="Did you mean 'medical'"):
        packs.resolve("medicl", 0, packs.DOMAIN_SPLITS, str(tmp_path))


def test_user_folder_missing_a_split_is_named(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(UserError, match="missing val.jsonl, test.jsonl"):
        packs.resolve(str(tmp_path), 0, packs.DOMAIN_SPLITS)


def write_table(folder, split, rows, kind):
    from datasets import Dataset

    path = folder / f"{split}.{kind}"
    if kind == "csv":
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        Dataset.from_list(rows).to_parquet(str(path))
    return path


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_csv_and_parquet_folders_with_their_own_column_names(tmp_path, kind):
    from edgeadapt.core import config
    from edgeadapt.data.run_data import RunData

    folder = tmp_path / "d"
    folder.mkdir()
    rows = [{"question": f"What is {i} + 1?", "answer": str(i + 1), "id": i} for i in range(6)]
    for split in ("train", "val", "test"):
        write_table(folder, split, rows, kind)
    cfg = config.load(
        None,
        [
            f"data.domain={folder}",
            "data.prompt_field=question",
            "data.response_field=answer",
            "model.name=tiny-random",
        ],
    )
    data = RunData(cfg)
    row = data.train[2]  # other columns are kept (a CSV cell is text; Parquet keeps its type)
    assert (row["prompt"], row["response"], str(row["id"])) == ("What is 2 + 1?", "3", "2")
    assert len(data.test) == 6
    broken = tmp_path / "broken"
    broken.mkdir()
    for split in ("train", "val", "test"):
        write_table(broken, split, rows[:2] + [{"question": "", "answer": "x", "id": 9}], kind)
    where = "4" if kind == "csv" else "3"  # a CSV's line counts its header
    with pytest.raises(UserError, match=rf"train\.{kind}:{where}: 'prompt' must be a non-empty string"):
        RunData(
            config.load(
                None, [f"data.domain={broken}", "data.prompt_field=question", "data.response_field=answer"]
            )
        )
    with pytest.raises(
        UserError, match=r"no column 'prompt' \(columns: answer, id, question\); set data.prompt_field"
    ):
        RunData(config.load(None, [f"data.domain={folder}"]))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "train.jsonl",
            b'{"prompt": "q", "response": "a"}\n{"prompt": "\xff", "response": "a"}\n',
            ":2: not UTF-8 text (byte 0xff at column 13)",
        ),
        (
            "train.jsonl",
            b'{"prompt": "q", "response": "a"}\n{"prompt": "q", "response": ',
            ":2: not valid JSON: the line ends before the JSON does",
        ),
        ("train.csv", b"", ": the dataset is empty (no header line, no rows)"),
        ("train.csv", b"prompt,response\n", ": the dataset is empty (a header, but no rows)"),
        ("train.csv", b"prompt,response\nq,a\nq2,\xe9t\xe9\n", ":3: not UTF-8 text (byte 0xe9)"),
        (
            "train.csv",
            b'prompt,response\nq,a\n"two\nlines",b\nq3\n',
            ":5: 'response' must be a non-empty string (line 5",
        ),
        ("train.parquet", b"not parquet at all", ": not a readable Parquet file (Parquet"),
    ],
)
def test_a_broken_data_file_is_one_line_naming_file_and_line(tmp_path, capsys, name, content, message):
    from edgeadapt.cli import main
    from tests.helpers import SMOKE

    folder = tmp_path / "d"
    folder.mkdir()
    (folder / name).write_bytes(content)
    for split in ("val", "test"):
        (folder / f"{split}.jsonl").write_text('{"prompt": "q", "response": "a"}\n')
    assert (
        main(["train", str(SMOKE), f"data.domain={folder}", f"out_dir={tmp_path}", "--method", "lora"]) == 2
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # no progress bars
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{folder / name}{message}" in lines[0], err


def test_files_written_atomically_get_the_mode_any_new_file_gets(tmp_path):
    import os

    from edgeadapt.core.files import UMASK, write_json_atomic

    write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~UMASK
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
