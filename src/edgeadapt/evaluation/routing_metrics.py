"""How well routes match labels, as pure functions (the labels and routes are strings).

A label is an expert, `null` (the base model), or two experts joined by `+` (a mixed request). A route is
the tuple of experts applied, by weight (empty: the base). A route is correct when it agrees with the
label: the same top expert; no expert for `null`; for a mixed request, only experts of the label (either
one alone, or both). Accuracy counts every request; macro-F1 and the confusion matrix use single-label
requests (classes: the experts and null) and the route's top expert.
"""

from __future__ import annotations

NULL = "null"


def predicted(route: tuple[str, ...]) -> str:
    return route[0] if route else NULL


def correct(label: str, route: tuple[str, ...]) -> bool:
    if "+" in label:
        return bool(route) and set(route) <= set(label.split("+"))
    return predicted(route) == label


def accuracy(labels: list[str], routes: list[tuple[str, ...]]) -> float | None:
    return sum(map(correct, labels, routes)) / len(labels) if labels else None


def confusion(labels: list[str], routes: list[tuple[str, ...]], classes: list[str]) -> list[list[int]]:
    """matrix[i][j]: single-label requests of class i routed (top expert) to class j."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for label, route in zip(labels, routes):
        if "+" not in label:
            matrix[index[label]][index[predicted(route)]] += 1
    return matrix


def macro_f1(matrix: list[list[int]]) -> float:
    """Mean F1 over the classes that occur (as a label or a prediction)."""
    scores = []
    for i in range(len(matrix)):
        tp = matrix[i][i]
        predicted_i = sum(row[i] for row in matrix)
        actual_i = sum(matrix[i])
        if predicted_i == 0 and actual_i == 0:
            continue
        scores.append(2 * tp / (predicted_i + actual_i))
    return sum(scores) / len(scores) if scores else 0.0


def to_adapter_rate(routes: list[tuple[str, ...]]) -> float | None:
    """Share of requests sent to any expert (for general requests: what should be near 0)."""
    return sum(bool(r) for r in routes) / len(routes) if routes else None
