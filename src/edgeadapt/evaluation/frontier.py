"""The trade-off between domain skill and forgetting, as pure functions on (degradation, accuracy) points.

- `pareto_frontier`: the points no other point beats on both axes (lower general degradation and higher
  domain accuracy), ordered by degradation;
- `degradation_at`: the general degradation a method needs to reach a target accuracy, interpolated
  linearly along its frontier; None when the frontier never reaches it;
- `compare_at_target`: which method forgets least at a target, and whether that lead is larger than the
  spread across seeds (otherwise it is reported as a tie, never as a win).
"""

from __future__ import annotations

from typing import Any


def pareto_frontier(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points (with `degradation` and `accuracy`) not dominated by another; by degradation, then accuracy."""
    ordered = sorted(points, key=lambda p: (p["degradation"], -p["accuracy"]))
    frontier, best = [], float("-inf")
    for point in ordered:
        if point["accuracy"] > best:
            frontier.append(point)
            best = point["accuracy"]
    return frontier


def degradation_at(frontier: list[dict[str, Any]], target: float, key: str = "degradation") -> float | None:
    """Interpolated `key` (degradation, or its spread) where the frontier first reaches accuracy `target`."""
    previous = None
    for point in frontier:  # accuracy rises along the frontier
        if point["accuracy"] >= target:
            if previous is None or point["accuracy"] == previous["accuracy"]:
                return point[key]
            share = (target - previous["accuracy"]) / (point["accuracy"] - previous["accuracy"])
            return previous[key] + share * (point[key] - previous[key])
        previous = point
    return None


def compare_at_target(frontiers: dict[str, list[dict[str, Any]]], target: float) -> dict[str, Any]:
    """Each method's interpolated degradation ± spread at `target`, and the verdict."""
    at = {}
    for method, frontier in frontiers.items():
        value = degradation_at(frontier, target)
        spread = degradation_at(frontier, target, "spread") if value is not None else None
        at[method] = None if value is None else {"degradation": value, "spread": spread or 0.0}
    reached = {m: v for m, v in at.items() if v is not None}
    verdict = "no method reaches this accuracy"
    if len(reached) == 1:
        verdict = f"only {next(iter(reached))} reaches this accuracy"
    elif reached:
        best = min(reached, key=lambda m: reached[m]["degradation"])
        upper = reached[best]["degradation"] + reached[best]["spread"]
        others = [v["degradation"] - v["spread"] for m, v in reached.items() if m != best]
        verdict = (
            f"{best} forgets least" if upper < min(others) else "within the spread across seeds: no winner"
        )
    return {"target_accuracy": target, "methods": at, "verdict": verdict}
