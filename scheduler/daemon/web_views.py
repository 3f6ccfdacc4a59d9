"""Geometry for the web page's drawings (pure): a pipeline's DAG laid out in columns by depth, and the
bars of the spend-by-day chart. The templates draw them as inline SVG, each with a table beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

NODE_W, NODE_H = 200, 84
GAP_X, GAP_Y = 56, 20
PAD = 12
CHART_W, CHART_H, BAR_GAP = 720, 180, 2


@dataclass(frozen=True)
class Node:
    name: str
    x: int
    y: int
    run: Mapping[str, Any] | None  # the step's run record, None while it has not started


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # an SVG path from the source's right side to the target's left side


@dataclass(frozen=True)
class Dag:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout_dag(order: Sequence[str], upstream: Mapping[str, Sequence[str]],
               runs: Mapping[str, Mapping[str, Any]]) -> Dag:
    """Each step in the column of its depth (1 + its deepest upstream step), in declared order down it."""
    depth: dict[str, int] = {}
    for name in order:  # order is topological: upstream steps come first
        depth[name] = 1 + max((depth[u] for u in upstream.get(name, ()) if u in depth), default=-1)
    rows: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for name in order:
        col = depth[name]
        row = rows.get(col, 0)
        rows[col] = row + 1
        nodes[name] = Node(name, PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y), runs.get(name))
    edges = [Edge(u, name, _curve(nodes[u], nodes[name])) for name in order for u in upstream.get(name, ())
             if u in nodes]
    width = PAD * 2 + (max(depth.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values(), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return Dag(list(nodes.values()), edges, width, height)


def _curve(a: Node, b: Node) -> str:
    x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
    x2, y2 = b.x, b.y + NODE_H // 2
    mid = (x1 + x2) // 2
    return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 6},{y2}"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


def bars(points: Sequence[tuple[str, float]], width: int = CHART_W, height: int = CHART_H) -> list[Bar]:
    """One bar per (label, value), scaled to the largest value (a bar of 0 is a 1-pixel line)."""
    if not points:
        return []
    top = max((v for _, v in points), default=0.0) or 1.0
    step = width / len(points)
    out = []
    for i, (label, value) in enumerate(points):
        h = max(1.0, height * value / top)
        out.append(Bar(label, value, round(i * step + BAR_GAP / 2, 2), round(height - h, 2),
                       round(max(1.0, step - BAR_GAP), 2), round(h, 2)))
    return out
