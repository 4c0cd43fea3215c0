"""Benchmark toyalgos' inverted-index BM25 against rank_bm25's BM25Okapi on one generated corpus.

Both index the same documents of ``make_corpus(docs, queries, generator=torch.Generator().manual_seed(seed))``
with the same parameters (k1 = 1.5, b = 0.75, epsilon = 0.25) and the same idf (ours with
``idf='rank_bm25'``, rank_bm25's variant). The script times the index build, then per query:
rank_bm25's ``get_scores`` + a top-10 sort, our ``bm25`` (every document's score, accumulated over
the postings) + the same sort, and our ``top_k`` (accumulators over the postings, a partial sort
of the candidates only). It checks that the scores agree and that the top-10 lists are the same
documents up to the order of tied scores.

Install the dev extra first (``pip install -e ".[dev]"``, which brings ``rank-bm25``). Run from the
repository root::

    python benchmarks/bm25_vs_rank_bm25.py                       # 100,000 documents, 1,000 queries
    python benchmarks/bm25_vs_rank_bm25.py --docs 20000 --queries 200
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version

import numpy as np
import torch
from rank_bm25 import BM25Okapi

from toyalgos.recsys import InvertedIndex, make_corpus

K1, B, EPSILON, TOP = 1.5, 0.75, 0.25, 10


def machine() -> str:
    return (
        f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, rank-bm25 {version('rank-bm25')}"
    )


def top_sets_agree(ids: np.ndarray, reference_scores: np.ndarray, k: int) -> bool:
    """The k documents are the reference's k best, up to the order of tied scores."""
    best = np.sort(reference_scores)[::-1][:k]
    return len(set(ids.tolist())) == k and np.allclose(
        np.sort(reference_scores[ids])[::-1], best, rtol=0, atol=1e-9
    )


def timed(fn, queries):
    t0 = time.perf_counter()
    out = [fn(q) for q in queries]
    return out, (time.perf_counter() - t0) / len(queries)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=100_000, help="documents in the corpus")
    ap.add_argument("--queries", type=int, default=1_000, help="queries timed")
    ap.add_argument("--seed", type=int, default=0, help="seed of the corpus")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    busy = os.getloadavg()[0]
    print(f"machine: {machine()}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    if busy >= 1:
        print(f"warning: 1-min load average {busy:.1f} before the start: other processes inflate the timings")
    corpus = make_corpus(args.docs, args.queries, generator=torch.Generator().manual_seed(args.seed))
    queries = corpus.queries
    print(
        f"corpus: {args.docs:,} documents (mean length {np.mean([len(d) for d in corpus.docs]):.1f}), "
        f"{len(queries):,} queries"
    )

    t0 = time.perf_counter()
    ours = InvertedIndex(corpus.docs)
    build_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = BM25Okapi(corpus.docs, k1=K1, b=B, epsilon=EPSILON)
    build_theirs = time.perf_counter() - t0

    their_scores, t_theirs = timed(lambda q: theirs.get_scores(q), queries)
    their_top = [np.argsort(s)[::-1][:TOP] for s in their_scores]  # rank_bm25's get_top_n order
    our_scores, t_ours_all = timed(lambda q: ours.bm25(q, K1, B, idf="rank_bm25", epsilon=EPSILON), queries)
    _, t_sort = timed(lambda s: np.argsort(s)[::-1][:TOP], their_scores)
    our_top, t_ours_top = timed(
        lambda q: ours.top_k(q, TOP, K1, B, idf="rank_bm25", epsilon=EPSILON)[0], queries
    )

    gap = max(float(np.abs(a - b).max()) for a, b in zip(our_scores, their_scores, strict=True))
    same_set = np.mean([top_sets_agree(o, s, TOP) for o, s in zip(our_top, their_scores, strict=True)])
    same_list = np.mean([(o == t).all() for o, t in zip(our_top, their_top, strict=True)])
    t_theirs_total = t_theirs + t_sort
    print(f"max |our score - rank_bm25's| over all queries and documents: {gap:.1e}")
    print(
        f"top-{TOP}: the same documents (ties in any order) for {same_set:.1%} of queries; "
        f"the same list in the same order for {same_list:.1%}"
    )
    print()
    print("| step | rank_bm25 | toyalgos | ours / theirs |")
    print("|---|---|---|---|")
    print(f"| index build (s) | {build_theirs:.2f} | {build_ours:.2f} | {build_ours / build_theirs:.3f} |")
    print(
        f"| query, all scores + top-{TOP} sort (ms) | {1e3 * t_theirs_total:.2f} | "
        f"{1e3 * (t_ours_all + t_sort):.2f} | {(t_ours_all + t_sort) / t_theirs_total:.3f} |"
    )
    print(
        f"| query, top_k over postings (ms) | {1e3 * t_theirs_total:.2f} | {1e3 * t_ours_top:.2f} | "
        f"{t_ours_top / t_theirs_total:.3f} |"
    )
    print(f"\n(1-min load average: {busy:.1f} before, {os.getloadavg()[0]:.1f} after)")


if __name__ == "__main__":
    main()
