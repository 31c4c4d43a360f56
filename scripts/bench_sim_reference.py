"""Genie-style reference for scripts/bench-sim.sh: simulates a DAG the way Synapse Genie runs it.

Genie keeps the DAG in a networkx DiGraph, counts finished predecessors per notebook, submits a
notebook to a fixed-size thread pool when all of them succeeded, and the pool runs submissions
in order (FIFO). This script replays that with simulated time: the same DAG as
`spool-bench simulate --export-dag` writes, each notebook running for its estimate, `threads` at once.

Prints one JSON line: notebooks, edges, makespan, and the best and median time of the
simulation (graph building included, JSON loading not) over --repeat runs.
"""

import argparse
import heapq
import json
import statistics
import time
from collections import deque

import networkx as nx

MAX_REPEAT = 1000


def simulate(dag):
    tasks = dag["tasks"]
    threads = max(1, int(dag["threads"]))
    graph = nx.DiGraph()
    for index in range(len(tasks)):
        graph.add_node(index)
    for index, task in enumerate(tasks):
        for dep in task["deps"]:
            graph.add_edge(dep, index)
    secs = [task["secs"] for task in tasks]
    finished_preds = {node: 0 for node in graph}
    queue = deque(node for node in graph if graph.in_degree(node) == 0)
    running = []  # (end time, notebook): the notebook ending first comes back first
    now = 0.0
    while queue or running:
        while queue and len(running) < threads:
            node = queue.popleft()
            heapq.heappush(running, (now + secs[node], node))
        now, node = heapq.heappop(running)
        for child in graph.successors(node):
            finished_preds[child] += 1
            if finished_preds[child] == graph.in_degree(child):
                queue.append(child)
    return now, graph.number_of_edges()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dag", help="DAG JSON written by spool-bench simulate --export-dag")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.repeat <= MAX_REPEAT:
        parser.error(f"--repeat takes 1 to {MAX_REPEAT}")
    with open(args.dag, encoding="utf-8") as f:
        dag = json.load(f)
    times = []
    makespan = edges = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        makespan, edges = simulate(dag)
        times.append((time.perf_counter() - start) * 1000.0)
    print(
        json.dumps(
            {
                "notebooks": len(dag["tasks"]),
                "edges": edges,
                "makespan_secs": makespan,
                "runs": args.repeat,
                "best_ms": min(times),
                "median_ms": statistics.median(times),
            }
        )
    )


if __name__ == "__main__":
    main()
