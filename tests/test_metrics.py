import math

import pytest
import torch

from edgeadapt.evaluation.metrics import degradation_pct, exact_match, normalize, retention
from edgeadapt.evaluation.topics import TopicSpace
from edgeadapt.inference.generation import greedy
from edgeadapt.inference.perplexity import perplexity_of, row_nll
from edgeadapt.inference.predictor import ModelPredictor, perplexity


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("E50 Vitamin A deficiency", "E50 Vitamin A deficiency", True),
        ("  e50 vitamin a deficiency.\nMore text", "E50 Vitamin A deficiency", True),
        ("E50: Vitamin-A deficiency", "E50 Vitamin A deficiency", True),
        ("E50", "E50 Vitamin A deficiency", False),
        ("The answer is 42", "42", False),
        ("", "", False),
    ],
)
def test_exact_match_normalizes_case_punctuation_and_first_line(answer, reference, expected):
    assert exact_match(answer, reference) is expected


def test_normalize_keeps_the_first_line_only():
    assert normalize("Copyleft Limited\nbecause ...") == "copyleft limited"


def test_degradation_and_retention_by_hand():
    assert degradation_pct(11.0, 10.0) == pytest.approx(10.0)
    assert degradation_pct(9.0, 10.0) == pytest.approx(-10.0)
    assert retention(0.45, 0.9) == pytest.approx(0.5)
    assert retention(0.5, 0.0) is None


class Uniform(torch.nn.Module):
    """Uniform next-token distribution over V tokens: perplexity must be exactly V."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.vocab) + self.dummy
        return type("Out", (), {"logits": logits})


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tokenizer):
    rows = [{"input_ids": [1, 2, 3, 4], "labels": [1, 2, 3, 4]}, {"input_ids": [5, 6], "labels": [-100, 6]}]
    scores = row_nll(Uniform(50), tokenizer, rows, batch_size=2)
    # first token of each row has no prediction; -100 labels are skipped
    assert [n for _, n in scores] == [3, 1]
    assert [s for s, _ in scores] == [pytest.approx(3 * math.log(50), rel=1e-5), pytest.approx(math.log(50))]
    assert perplexity(ModelPredictor(Uniform(50), tokenizer), rows, 1) == pytest.approx(50, rel=1e-5)


def test_perplexity_does_not_depend_on_batching(tiny_model, tokenizer):
    rows = [{"input_ids": list(range(3, 3 + n)), "labels": list(range(3, 3 + n))} for n in (5, 9, 14)]
    model = ModelPredictor(tiny_model, tokenizer)
    assert perplexity(model, rows, 1) == pytest.approx(perplexity(model, rows, 3), rel=1e-4)
    assert model.loglikelihood(rows, 1) == [pytest.approx(s, rel=1e-5) for s in model.loglikelihood(rows, 3)]


def test_batched_greedy_equals_one_at_a_time(tiny_model, tokenizer):
    tokenizer.padding_side = "left"
    prompts = [tokenizer("hello there")["input_ids"], tokenizer("a much longer prompt here")["input_ids"]]
    together = greedy(tiny_model, tokenizer, prompts, 6, batch_size=2)
    alone = [greedy(tiny_model, tokenizer, [p], 6, batch_size=1)[0] for p in prompts]
    assert together == alone


class WordEmbedder:
    """Bag-of-keywords embedding: enough to check the assignment logic by hand."""

    words = ["river", "recipe", "goal", "icd"]

    def __call__(self, texts):
        vecs = torch.tensor([[float(w in t.lower()) for w in self.words] + [0.1] for t in texts])
        return torch.nn.functional.normalize(vecs, dim=-1)


def test_answers_go_to_the_nearest_topic_or_the_domain():
    space = TopicSpace(
        WordEmbedder(),
        {"geography": ["river"], "cooking": ["recipe"], "sport": ["goal"]},
        {"domain:medical": ["icd code"]},
    )
    assert space.assign(["The river Nile", "A recipe for soup", "ICD code E50", "goal!"]) == [
        "geography",
        "cooking",
        "domain:medical",
        "sport",
    ]


def test_perplexity_of_responses_equals_a_hand_computation_from_every_logit(tiny_model, tokenizer):
    # Rows score their responses only: edgeadapt asks the model for logits at those positions alone.
    rows = [
        {"input_ids": list(range(3, 3 + n)), "labels": [-100] * (n - k) + list(range(3 + n - k, 3 + n))}
        for n, k in ((6, 2), (11, 4), (9, 1))
    ]
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:  # one row at a time, every logit, log-softmax by hand
            logp = tiny_model(input_ids=torch.tensor([row["input_ids"]])).logits[0].log_softmax(-1)
            for pos, label in enumerate(row["labels"][1:]):
                if label != -100:
                    total -= float(logp[pos, label])
                    count += 1
    scores = row_nll(tiny_model, tokenizer, rows, batch_size=3)
    assert (sum(s for s, _ in scores), sum(n for _, n in scores)) == (pytest.approx(total, rel=1e-5), count)
    assert perplexity_of(scores) == pytest.approx(math.exp(total / count), rel=1e-5)


@pytest.mark.parametrize("bf16", [False, True])
def test_a_predictor_answers_in_the_precision_asked_and_keeps_its_weights(tiny_model, tokenizer, bf16):
    """`ModelPredictor(bf16=True)`: generation and log-likelihood multiply in bf16 (autocast), the weights stay
    fp32; by default everything stays fp32."""
    predictor = ModelPredictor(tiny_model, tokenizer, bf16=bf16)
    linear = next(m for m in tiny_model.modules() if isinstance(m, torch.nn.Linear))
    seen: list[torch.dtype] = []
    handle = linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    try:
        ids = tokenizer("the cat sat")["input_ids"]
        predictor.generate([ids], max_new_tokens=2, batch_size=1)
        predictor.loglikelihood([{"input_ids": ids, "labels": ids}], batch_size=1)
    finally:
        handle.remove()
    assert len(seen) >= 3 and set(seen) == {torch.bfloat16 if bf16 else torch.float32}
    assert {p.dtype for p in tiny_model.parameters()} == {torch.float32}


def test_a_predictor_left_in_fp32_keeps_its_callers_bf16(tiny_model, tokenizer):
    """A caller's own autocast (bench/loragen_precision.py answers that way) holds through a default predictor."""
    from edgeadapt.inference.predictor import answering

    seen: list[torch.dtype] = []
    linear = next(m for m in tiny_model.modules() if isinstance(m, torch.nn.Linear))
    handle = linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    try:
        with answering(tiny_model, True):
            ModelPredictor(tiny_model, tokenizer).generate([tokenizer("the cat")["input_ids"]], 2, 1)
    finally:
        handle.remove()
    assert seen and set(seen) == {torch.bfloat16}
