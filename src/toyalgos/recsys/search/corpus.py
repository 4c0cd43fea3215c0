"""Synthetic search and query logs whose truth is known: which documents are relevant, which queries trend.

A real log shows clicks, never the relevance a query had to each document. Here the documents
are generated from topics, so the graded relevance of every (query, document) pair, and hence the
ideal ranking, is written down, as is every query's popularity over time and which queries
belong together in a session.

Search corpus (``make_corpus``):

- a vocabulary of ``n_topics`` disjoint topic blocks of ``topic_vocab`` words each, with Zipf
  frequencies inside a block, plus a shared background block (the common words every text uses);
- a document draws topic weights theta_d ~ Dirichlet(alpha) (small alpha: one or two topics),
  a length ~ 5 + Poisson(doc_length - 5), and each token from the background with probability
  ``background`` or else from topic z ~ theta_d;
- a fraction ``spam`` of documents are keyword-stuffed: half their tokens repeat a few of their
  topic's most frequent words. They look relevant to term matching but are not;
- a query picks a topic t and 2-3 distinct words from it; the relevance of document d is the
  grade of theta_{d, t} (0 below 0.1, 1 from 0.1, 2 from 0.35, 3 from 0.7), and 0 for spam.

Query log (``make_query_log``): distinct query strings of made-up words, a Zipf popularity, a
day-by-day log whose popularity shifts after ``shift_day`` (some queries start trending, the
former favourites fade) and sessions in which planted groups of related queries co-occur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from toyalgos.core.checks import check_generator, check_int, check_number, check_positive_int
from toyalgos.core.rng import numpy_rng

GRADE_THRESHOLDS = (0.1, 0.35, 0.7)  # theta_{d,t} from which a document has grade 1, 2, 3


@dataclass(frozen=True)
class Corpus:
    """Documents and queries as token lists, with the generating truth.

    ``relevance[q, d]`` is the graded relevance (0-3) of document d to query q; ``theta`` the
    documents' topic weights; ``spam`` marks the keyword-stuffed documents.
    """

    docs: list[list[str]]
    queries: list[list[str]]
    query_topic: np.ndarray  # (n_queries,) int
    theta: np.ndarray  # (n_docs, n_topics) float, rows sum to 1
    spam: np.ndarray  # (n_docs,) bool
    relevance: np.ndarray  # (n_queries, n_docs) int in 0..3


def _zipf(k: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** exponent
    return p / p.sum()


def relevance_grade(theta_t: np.ndarray) -> np.ndarray:
    """Grade 0-3 of a topic weight: the number of ``GRADE_THRESHOLDS`` it reaches."""
    return np.searchsorted(np.asarray(GRADE_THRESHOLDS), theta_t, side="right")


def make_corpus(
    n_docs: int = 2000,
    n_queries: int = 200,
    *,
    generator: torch.Generator | None = None,
    n_topics: int = 8,
    topic_vocab: int = 300,
    background_vocab: int = 200,
    doc_length: float = 40.0,
    alpha: float = 0.15,
    background: float = 0.4,
    spam: float = 0.08,
    zipf_exponent: float = 1.0,
) -> Corpus:
    """A topic-model corpus of ``n_docs`` documents and ``n_queries`` queries with graded relevance.

    Words are strings ``"t{topic}w{rank}"`` (topic words) and ``"bg{rank}"`` (background), so a
    printed document shows where its words came from. Everything is drawn from ``generator``.
    """
    check_positive_int(n_docs, "n_docs")
    check_positive_int(n_queries, "n_queries")
    check_int(n_topics, "n_topics", 2)
    check_int(topic_vocab, "topic_vocab", 3)
    check_positive_int(background_vocab, "background_vocab")
    check_number(doc_length, "doc_length", 5)
    check_number(alpha, "alpha", 0, low_open=True)
    check_number(background, "background", 0, 1, high_open=True)
    check_number(spam, "spam", 0, 1)
    check_number(zipf_exponent, "zipf_exponent", 0)
    rng = numpy_rng(check_generator(generator))
    words = [f"t{t}w{r}" for t in range(n_topics) for r in range(topic_vocab)]
    words += [f"bg{r}" for r in range(background_vocab)]
    topic_p, bg_p = _zipf(topic_vocab, zipf_exponent), _zipf(background_vocab, zipf_exponent)

    theta = rng.dirichlet(np.full(n_topics, alpha), size=n_docs)  # (N, T)
    is_spam = rng.random(n_docs) < spam
    length = 5 + rng.poisson(doc_length - 5, size=n_docs)  # (N,)
    doc_of = np.repeat(np.arange(n_docs), length)  # (L,) document of each token
    n_tok = len(doc_of)
    # Topic of each token: inverse-CDF draw from its document's theta.
    cdf = np.cumsum(theta, axis=1)
    z = (rng.random(n_tok)[:, None] > cdf[doc_of]).sum(1).clip(max=n_topics - 1)
    token = z * topic_vocab + rng.choice(topic_vocab, size=n_tok, p=topic_p)
    from_bg = rng.random(n_tok) < background
    token[from_bg] = n_topics * topic_vocab + rng.choice(background_vocab, size=int(from_bg.sum()), p=bg_p)
    # Keyword stuffing: half of a spam document's tokens become its main topic's top-3 words.
    main = theta.argmax(1)
    stuffed = is_spam[doc_of] & (rng.random(n_tok) < 0.5)
    token[stuffed] = main[doc_of[stuffed]] * topic_vocab + rng.integers(0, 3, size=int(stuffed.sum()))
    ends = np.cumsum(length)
    docs = [[words[i] for i in token[e - n : e].tolist()] for e, n in zip(ends, length, strict=True)]

    q_topic = rng.integers(0, n_topics, size=n_queries)
    q_len = rng.integers(2, 4, size=n_queries)
    # Distinct words per query: Zipf-weighted sampling without replacement (Gumbel top-k).
    keys = np.log(topic_p)[None, :] + rng.gumbel(size=(n_queries, topic_vocab))
    top = np.argsort(-keys, axis=1)[:, :3]
    queries = [
        [words[t * topic_vocab + j] for j in top[i, :n].tolist()]
        for i, (t, n) in enumerate(zip(q_topic, q_len, strict=True))
    ]
    relevance = relevance_grade(theta[:, q_topic].T)  # (Q, N)
    relevance[:, is_spam] = 0
    return Corpus(docs, queries, q_topic, theta, is_spam, relevance)


@dataclass(frozen=True)
class QueryLog:
    """A query log with its truth.

    ``queries`` are the distinct query strings; the log is one row per submission
    (``log_query[i]`` submitted on ``log_day[i]``); ``popularity[d]`` the distribution the
    submissions of day d were drawn from; ``trending`` the queries that rise after ``shift_day``;
    ``sessions`` lists of query ids submitted together, and ``groups`` the planted groups of
    related queries that sessions draw from (each query in at most one group).
    """

    queries: list[str]
    log_query: np.ndarray  # (n_submissions,) int
    log_day: np.ndarray  # (n_submissions,) int, sorted
    popularity: np.ndarray  # (n_days, n_queries), rows sum to 1
    shift_day: int
    trending: np.ndarray  # (n_trending,) int
    sessions: list[list[int]]
    groups: np.ndarray  # (n_groups, group_size) int


_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct made-up words of 2-3 syllables."""
    out: dict[str, None] = {}
    while len(out) < n:
        k = rng.integers(2, 4)
        out.setdefault("".join(_SYLLABLES[s] for s in rng.integers(0, len(_SYLLABLES), size=k)), None)
    return list(out)


def _query_strings(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct queries: a head word alone or followed by a modifier ("kaba", "kaba tumi"),
    about five queries per head word, so that a typed prefix has many completions."""
    words = _words(rng, n // 5 + n // 10)
    heads, modifiers = words[: n // 5], words[n // 5 :]
    out: dict[str, None] = dict.fromkeys(heads)
    while len(out) < n:
        out.setdefault(f"{heads[rng.integers(len(heads))]} {modifiers[rng.integers(len(modifiers))]}", None)
    return list(rng.permutation(list(out)))


def make_query_log(
    n_queries: int = 2000,
    *,
    generator: torch.Generator | None = None,
    n_days: int = 60,
    per_day: int = 2000,
    shift_day: int = 40,
    n_trending: int = 100,
    trend_boost: float = 40.0,
    n_sessions: int = 20_000,
    n_groups: int = 100,
    group_size: int = 6,
    zipf_exponent: float = 1.0,
) -> QueryLog:
    """A day-indexed query log with a popularity shift after ``shift_day`` and planted session groups.

    Queries are a made-up head word, alone or with a modifier word. Popularity is Zipf over a
    random order of the queries; from ``shift_day`` on, ``n_trending`` queries drawn outside the
    top 100 gain ``trend_boost`` times their weight and the former top 20 drop to a tenth of theirs.
    A session is, with probability one half, 2-3 distinct queries of one planted group (drawn
    uniformly), half the time followed by one query drawn by popularity; otherwise 2-4 queries
    drawn by popularity (noise).
    """
    check_int(n_queries, "n_queries", 10 * group_size)
    check_positive_int(n_days, "n_days")
    check_positive_int(per_day, "per_day")
    check_int(shift_day, "shift_day", 1, n_days - 1)
    check_int(n_trending, "n_trending", 0, n_queries - 100)
    check_number(trend_boost, "trend_boost", 1)
    check_positive_int(n_sessions, "n_sessions")
    check_int(group_size, "group_size", 3)
    check_int(n_groups, "n_groups", 1, n_queries // group_size)
    check_number(zipf_exponent, "zipf_exponent", 0)
    rng = numpy_rng(check_generator(generator))
    queries = [str(q) for q in _query_strings(rng, n_queries)]

    base = _zipf(n_queries, zipf_exponent)[np.argsort(rng.permutation(n_queries))]  # rank of q: perm
    by_rank = np.argsort(-base)
    trending = rng.choice(by_rank[100:], size=n_trending, replace=False)
    after = base.copy()
    after[trending] *= trend_boost
    after[by_rank[:20]] *= 0.1
    after /= after.sum()
    days = np.arange(n_days)
    popularity = np.where(days[:, None] < shift_day, base[None, :], after[None, :])  # (D, Q)
    before_q = rng.choice(n_queries, size=shift_day * per_day, p=base)
    after_q = rng.choice(n_queries, size=(n_days - shift_day) * per_day, p=after)
    log_query = np.concatenate([before_q, after_q])
    log_day = np.repeat(days, per_day)

    groups = rng.permutation(n_queries)[: n_groups * group_size].reshape(n_groups, group_size)
    # A planted session: 2-3 queries of one group, half the time followed by a popular query
    # (popular queries then meet every group); a noise session: 2-4 queries drawn by popularity.
    planted = rng.random(n_sessions) < 0.5
    pick_group = groups[rng.integers(0, n_groups, size=n_sessions)]  # (S, group_size)
    order = np.argsort(rng.random((n_sessions, group_size)), axis=1)
    noise = rng.choice(n_queries, size=(n_sessions, 4), p=base)  # (S, 4)
    rows = noise.copy()
    rows[planted, :3] = np.take_along_axis(pick_group, order, axis=1)[planted, :3]
    length = np.where(planted, rng.integers(2, 4, size=n_sessions), rng.integers(2, 5, size=n_sessions))
    extra = planted & (rng.random(n_sessions) < 0.5)
    rows[extra, length[extra]] = noise[extra, 3]
    length = length + extra
    sessions = [list(dict.fromkeys(r[:k].tolist())) for r, k in zip(rows, length, strict=True)]
    return QueryLog(queries, log_query, log_day, popularity, shift_day, trending, sessions, groups)
