"""A toy task collection made in code (`tasks.collection: toy`): string transformations of random short
letter strings, for tests and smoke configs. Every task shares one input format, so only the description
says what to do; `last` is held out (its own source), `first-two` is an unseen concept of a seen source."""

from __future__ import annotations

import random

TOY = {
    # name: (source, kind, function, description, paraphrase 1, paraphrase 2)
    "copy": (
        "toy:copy",
        "exact",
        lambda s: s,
        "Repeat the letters exactly as given.",
        "Copy the input unchanged.",
        "Write the same letters again.",
    ),
    "reverse": (
        "toy:reverse",
        "exact",
        lambda s: s[::-1],
        "Write the letters in reverse order.",
        "Reverse the string.",
        "Give the letters backwards.",
    ),
    "first": (
        "toy:first",
        "exact",
        lambda s: s[0],
        "Reply with the first letter only.",
        "Output the initial letter.",
        "Give just the first character.",
    ),
    "double": (
        "toy:double",
        "exact",
        lambda s: s + s,
        "Write the letters twice in a row.",
        "Repeat the whole string two times.",
        "Output the input followed by itself.",
    ),
    "palindrome": (
        "toy:palindrome",
        "choice",
        lambda s: "yes" if s == s[::-1] else "no",
        "Answer yes if the letters read the same backwards, otherwise no.",
        "Is the string a palindrome? yes or no.",
        "Say yes for a palindrome and no otherwise.",
    ),
    "last": (
        "toy:last",
        "exact",
        lambda s: s[-1],
        "Reply with the last letter only.",
        "Output the final letter.",
        "Give just the last character.",
    ),
    "first-two": (
        "toy:first",
        "exact",
        lambda s: s[:2],
        "Reply with the first two letters only.",
        "Output the first two characters.",
        "Give the two initial letters.",
    ),
}
HELDOUT, UNSEEN = {"last"}, {"first-two"}


def toy_string(rng: random.Random, palindrome: bool = False) -> str:
    half = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 3)))
    return half + half[::-1] if palindrome else half + "".join(rng.choice("abcdefgh") for _ in range(2))


def toy_rows(name: str, count: int, rng: random.Random) -> list[dict]:
    source, kind, function, *_ = TOY[name]
    rows, seen = [], set()
    while len(rows) < count:
        text = toy_string(rng, palindrome=kind == "choice" and len(rows) % 2 == 0)
        if text in seen:
            continue
        seen.add(text)
        row = {"prompt": text, "response": function(text), "answers": [function(text)]}
        if kind == "choice":
            row["choices"] = ["yes", "no"]
        rows.append(row)
    return rows
