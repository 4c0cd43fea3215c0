"""An inverted index with BM25 and TF-IDF scoring, and top-k retrieval over its postings.

The index maps each term to its postings: the documents that contain it, with the term's
frequency in each (stored as one CSR array: ``indptr``, ``postings_doc``, ``postings_tf``), and
keeps every document's length. A query only touches the postings of its own terms
(term-at-a-time accumulation), never the documents that share no term with it.

BM25 (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond"):

    score(D, Q) = sum_{q in Q} idf(q) * f(q, D) (k1 + 1) / (f(q, D) + k1 (1 - b + b |D| / avgdl))

``k1`` sets how fast the term frequency f saturates, ``b`` how much long documents are
normalised. Two idf variants, n the number of documents containing q among N:

- ``'okapi'``: ln(1 + (N - n + 0.5) / (n + 0.5)), never negative (Lucene's form);
- ``'rank_bm25'``: ln((N - n + 0.5) / (n + 0.5)) without the +1, as ``rank_bm25.BM25Okapi``
  computes it: a term in more than half of the documents would get a negative idf, so it gets
  ``epsilon`` times the mean idf over the vocabulary instead (a mean taken before flooring,
  which is itself negative in a tiny corpus of common words).

Query terms count with repetition (a term typed twice scores twice) and unknown terms score 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from toyalgos.core.checks import check_choice, check_number, check_positive_int

IDF_KINDS = ("okapi", "rank_bm25")
Tokens = Sequence[str]


def check_query(query_tokens: object) -> list[str]:
    """A query must be a list (or tuple) of string tokens; a bare string is refused."""
    if isinstance(query_tokens, str) or not isinstance(query_tokens, (list, tuple)):
        raise TypeError(
            f"query_tokens must be a list of string tokens, got {type(query_tokens).__name__}"
            + (" (split the string first, e.g. text.split())" if isinstance(query_tokens, str) else "")
        )
    bad = [t for t in query_tokens if not isinstance(t, str)]
    if bad:
        raise TypeError(f"query_tokens must hold strings, got {type(bad[0]).__name__} {bad[0]!r}")
    return list(query_tokens)


def check_documents(docs: object) -> list[Tokens]:
    """A corpus must be a non-empty list of token lists, not all empty."""
    if isinstance(docs, str) or not isinstance(docs, Sequence):
        raise TypeError(f"docs must be a list of token lists, got {type(docs).__name__}")
    if len(docs) == 0:
        raise ValueError("docs is empty: an index needs at least one document")
    for i, d in enumerate(docs):
        if isinstance(d, str) or not isinstance(d, (list, tuple)):
            raise TypeError(f"docs[{i}] must be a list of string tokens, got {type(d).__name__}")
    return list(docs)


class InvertedIndex:
    """Term -> postings (document ids with term frequencies), document lengths, and scoring.

    ``docs`` is a list of token lists (an empty document is allowed and scores 0; a corpus with
    no token at all is refused, its average length being 0). Term ids follow first appearance.
    """

    def __init__(self, docs: Sequence[Tokens]):
        docs = check_documents(docs)
        n = len(docs)
        self.n_docs = n
        self.doc_length = np.fromiter(map(len, docs), dtype=np.int64, count=n)  # (N,)
        if self.doc_length.sum() == 0:
            raise ValueError(f"all {n} documents are empty: BM25's average document length would be 0")
        self.vocabulary: dict[str, int] = {}
        add = self.vocabulary.setdefault
        tokens = np.fromiter(
            (add(t, len(self.vocabulary)) for d in docs for t in d),
            dtype=np.int64,
            count=int(self.doc_length.sum()),
        )  # (L,) term id of every token, documents one after another
        bad = next((t for t in self.vocabulary if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"documents must hold string tokens, got {type(bad).__name__} {bad!r}")
        self.terms = list(self.vocabulary)
        self.doc_ptr = np.r_[
            0, np.cumsum(self.doc_length)
        ]  # (N+1,) the forward index: tokens[ptr[d]:ptr[d+1]]
        self.tokens = tokens
        self.avgdl = int(self.doc_length.sum()) / n
        # Postings: one (term, doc) key per distinct pair, sorted by term then document.
        doc_of = np.repeat(np.arange(n), self.doc_length)
        keys, tf = np.unique(tokens * n + doc_of, return_counts=True)
        term = keys // n
        V = len(self.vocabulary)
        self.postings_doc = keys % n  # (P,)
        self.postings_tf = tf  # (P,)
        self.df = np.bincount(term, minlength=V)  # (V,) document frequency n(q)
        self.indptr = np.r_[0, np.cumsum(self.df)]  # (V+1,)
        self.distinct_terms = np.bincount(self.postings_doc, minlength=n)  # (N,) terms per document
        # TF-IDF document norms (scikit-learn's smooth idf), for the cosine.
        w = tf * self.tfidf_idf()[term]
        self.tfidf_norm = np.sqrt(np.bincount(self.postings_doc, weights=w**2, minlength=n))  # (N,)

    def __len__(self) -> int:
        return self.n_docs

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(document ids, term frequencies) of ``term``; empty arrays for an unknown term."""
        t = self.vocabulary.get(term)
        if t is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        s = slice(self.indptr[t], self.indptr[t + 1])
        return self.postings_doc[s], self.postings_tf[s]

    def idf(self, kind: Literal["okapi", "rank_bm25"] = "okapi", epsilon: float = 0.25) -> np.ndarray:
        """BM25's idf of every term (by term id), ``'okapi'`` or ``'rank_bm25'`` (see the module)."""
        check_choice(kind, "idf", IDF_KINDS)
        check_number(epsilon, "epsilon", 0)
        N, n = self.n_docs, self.df
        if kind == "okapi":
            return np.log((N - n + 0.5) / (n + 0.5) + 1.0)
        idf = np.log(N - n + 0.5) - np.log(n + 0.5)
        return np.where(idf < 0, epsilon * idf.mean(), idf)

    def tfidf_idf(self) -> np.ndarray:
        """scikit-learn's smooth idf, ln((1 + N) / (1 + n)) + 1, of every term."""
        return np.log((1 + self.n_docs) / (1 + self.df)) + 1.0

    def _bm25_terms(
        self, query_tokens: Tokens, k1: float, b: float, idf: str, epsilon: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every (document, BM25 term score) pair of the query's postings, term after term."""
        query = check_query(query_tokens)
        check_number(k1, "k1", 0)
        check_number(b, "b", 0, 1)
        weights = self.idf(idf, epsilon)
        ids = [self.vocabulary[q] for q in query if q in self.vocabulary]
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        spans = [np.arange(self.indptr[t], self.indptr[t + 1]) for t in ids]
        term = np.repeat(ids, [len(s) for s in spans])
        p = np.concatenate(spans)
        doc, f = self.postings_doc[p], self.postings_tf[p]
        norm = 1 - b + b * self.doc_length[doc] / self.avgdl
        return doc, weights[term] * (f * (k1 + 1) / (f + k1 * norm))

    def bm25(
        self,
        query_tokens: Tokens,
        k1: float = 1.5,
        b: float = 0.75,
        idf: Literal["okapi", "rank_bm25"] = "okapi",
        epsilon: float = 0.25,
    ) -> np.ndarray:
        """BM25 score of every document, shape (N,), accumulated over the query terms' postings."""
        doc, contribution = self._bm25_terms(query_tokens, k1, b, idf, epsilon)
        return np.bincount(doc, weights=contribution, minlength=self.n_docs)

    def top_k(
        self,
        query_tokens: Tokens,
        k: int,
        k1: float = 1.5,
        b: float = 0.75,
        idf: Literal["okapi", "rank_bm25"] = "okapi",
        epsilon: float = 0.25,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents by BM25 and their scores, best first (ties: lower id first).

        Term-at-a-time: one accumulator per document found in the query terms' postings, then a
        partial sort of those candidates only; the result is the exhaustive top-k
        (``argsort`` of ``bm25`` over all documents). Only when fewer than ``k`` documents match,
        or a floored ``'rank_bm25'`` idf makes a score negative, is every document scored.
        """
        check_positive_int(k, "k")
        doc, contribution = self._bm25_terms(query_tokens, k1, b, idf, epsilon)
        k = min(k, self.n_docs)
        candidate, slot = np.unique(doc, return_inverse=True)  # (C,) sorted document ids
        acc = np.bincount(slot, weights=contribution, minlength=len(candidate))  # (C,) accumulators
        if len(candidate) < k or (acc <= 0).any():
            scores = self.bm25(query_tokens, k1, b, idf, epsilon)
            best = np.argsort(-scores, kind="stable")[:k]
            return best, scores[best]
        threshold = np.partition(acc, len(acc) - k)[len(acc) - k]  # the k-th largest score
        keep = np.flatnonzero(acc >= threshold)  # ties at the threshold included
        order = keep[np.lexsort((candidate[keep], -acc[keep]))][:k]
        return candidate[order], acc[order]


def tfidf_scores(index: InvertedIndex, query_tokens: Tokens) -> np.ndarray:
    """Cosine similarity of the query's TF-IDF vector with every document's, shape (N,).

    The vectors are scikit-learn's ``TfidfVectorizer`` defaults (Salton & Buckley 1988): raw
    counts times the smooth idf ln((1 + N) / (1 + n)) + 1, L2-normalised. Unknown query terms
    are dropped; a query with no known term, or an empty document, scores 0.
    """
    query = check_query(query_tokens)
    ids, counts = np.unique([index.vocabulary[q] for q in query if q in index.vocabulary], return_counts=True)
    if len(ids) == 0:
        return np.zeros(index.n_docs)
    idf = index.tfidf_idf()
    q = counts * idf[ids]
    q = q / np.linalg.norm(q)  # (T,) the normalised query vector
    spans = [np.arange(index.indptr[t], index.indptr[t + 1]) for t in ids]
    p = np.concatenate(spans)
    weight = np.repeat(q * idf[ids], [len(s) for s in spans]) * index.postings_tf[p]
    scores = np.bincount(index.postings_doc[p], weights=weight, minlength=index.n_docs)
    nonzero = index.tfidf_norm > 0
    scores[nonzero] /= index.tfidf_norm[nonzero]
    return scores
