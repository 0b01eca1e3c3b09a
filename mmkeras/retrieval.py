"""Retrieval on embeddings: exact top-k search in batches, an index, and the ranking metrics.

Everything here works on L2-normalised embeddings (numpy arrays `(n, d)`), such as
`DualEncoder.encode_images` and `encode_texts` return, so a similarity is a dot product (the
cosine). Nothing here needs Keras.

- `top_k(queries, index, k)`: the k best rows of `index` for each query, exact, in batches of
  queries, so 100,000 queries against 10,000 items never hold the whole 100,000 x 10,000
  similarity matrix (one batch of `batch_size` x 10,000 at a time).
- `EmbeddingIndex`: embeddings with optional keys (file names, ids), searched with `search`.
- `retrieval_metrics`: Recall@K, median rank and mean reciprocal rank, text -> image and
  image -> text, computed in batches.

**Relevance.** `retrieval_metrics` reports two kinds:

- *pair* (`t2i_recall@1`, ...): each text has one relevant image, the one it was written for
  (and each image the one text written for it);
- *class* (`class_t2i_recall@1`, ...), when labels are given: every image of the text's class is
  relevant (for descriptions generated from class labels, the pair level asks the impossible:
  two photos of sneakers with the same description cannot be told apart).

A rank is 1 + the number of non-relevant items scored strictly higher than the best relevant
one (ties go to the relevant item). Recall@K is the share of queries whose rank is <= K, the
mean reciprocal rank the mean of 1 / rank.

Example:

>>> import numpy as np
>>> images = np.eye(3, dtype="float32")
>>> texts = np.array([[1, 0, 0], [0, 0.6, 0.8], [0, 0.8, 0.6]], "float32")
>>> scores, indices = top_k(texts, images, k=2)
>>> indices.tolist()
[[0, 1], [2, 1], [1, 2]]
>>> metrics = retrieval_metrics(images, texts)
>>> metrics["t2i_recall@1"], metrics["t2i_median_rank"]
(0.3333333333333333, 2.0)
"""

import numpy as np

KS = (1, 5, 10)


def _as_embeddings(value, name):
    array = np.asarray(value)
    if array.ndim != 2 or array.dtype.kind != "f":
        raise ValueError(
            f"`{name}` must be float embeddings of shape (n, dim). "
            f"Received: {name} of shape {array.shape} and dtype {array.dtype}"
        )
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must hold finite values. Received: {name} containing NaN or inf")
    return array.astype("float32", copy=False)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    return int(batch_size)


def top_k(queries, index, k=10, batch_size=1024):
    """The `k` rows of `index` most similar to each query (exact; dot products, best first).

    Args:
        queries: float array `(n, dim)`.
        index: float array `(m, dim)`, with the same `dim`.
        k: int, results per query (at most `m`). Defaults to `10`.
        batch_size: int, queries scored at once (memory: `batch_size * m` floats). Defaults to
            `1024`.

    Returns:
        `(scores, indices)`: float32 `(n, k)` similarities and int64 `(n, k)` rows of `index`,
        best first (ties in index order).

    Example:

    >>> top_k(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0], [0.7, 0.7]]), k=2)[1].tolist()
    [[1, 2]]
    """
    queries, index = _as_embeddings(queries, "queries"), _as_embeddings(index, "index")
    batch_size = _check_batch_size(batch_size)
    if queries.shape[1] != index.shape[1]:
        raise ValueError(
            f"`queries` and `index` must have the same width. Received: {queries.shape[1]} and {index.shape[1]}"
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(index):
        raise ValueError(f"`k` must be an integer from 1 to the {len(index)} items of the index. Received: k={k!r}")
    scores = np.zeros((len(queries), k), "float32")
    indices = np.zeros((len(queries), k), "int64")
    for start in range(0, len(queries), batch_size):
        similarity = queries[start : start + batch_size] @ index.T
        if k < similarity.shape[1]:
            best = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        else:
            best = np.broadcast_to(np.arange(similarity.shape[1]), similarity.shape)
        best_scores = np.take_along_axis(similarity, best, axis=1)
        order = np.lexsort((best, -best_scores), axis=1)  # by score, then by index
        indices[start : start + batch_size] = np.take_along_axis(best, order, axis=1)
        scores[start : start + batch_size] = np.take_along_axis(best_scores, order, axis=1)
    return scores, indices


class EmbeddingIndex:
    """Embeddings to search, with optional keys (what each row is: a path, an id, a caption).

    Args:
        embeddings: float array `(n, dim)` (L2-normalised, as the dual encoder gives them).
        keys: a sequence of `n` keys, or None (results name rows by position).

    Example:

    >>> index = EmbeddingIndex(np.eye(3, dtype="float32"), keys=["cat.png", "dog.png", "car.png"])
    >>> index.search(np.array([[0.1, 0.9, 0.0]], "float32"), k=1)
    [[('dog.png', 0.9)]]

    At a larger scale, hand `index.embeddings` (float32, normalised: inner product = cosine) to
    an approximate-nearest-neighbour library such as FAISS (`IndexFlatIP`, `IndexHNSWFlat`) or
    ScaNN; this class stays exact.
    """

    def __init__(self, embeddings, keys=None):
        self.embeddings = _as_embeddings(embeddings, "embeddings")
        if keys is not None:
            keys = list(keys)
            if len(keys) != len(self.embeddings):
                raise ValueError(
                    f"`keys` must name each of the {len(self.embeddings)} embeddings. Received: {len(keys)} keys"
                )
        self.keys = keys

    def __len__(self):
        return len(self.embeddings)

    def __repr__(self):
        return f"<EmbeddingIndex: {len(self)} items of width {self.embeddings.shape[1]}>"

    def search(self, queries, k=10, batch_size=1024):
        """For each query embedding, the `k` best `(key, similarity)` pairs, best first.

        Keys are the row positions when the index has no keys. See `top_k` for the arguments.
        """
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            k = min(int(k), len(self))  # a small index gives all it has
        scores, indices = top_k(queries, self.embeddings, k, batch_size)
        keys = self.keys if self.keys is not None else range(len(self))
        return [
            [(keys[i], round(float(s), 6)) for i, s in zip(row_indices, row_scores)]
            for row_indices, row_scores in zip(indices, scores)
        ]


def ranks(queries, items, relevant=None, query_labels=None, item_labels=None, batch_size=1024):
    """The rank of the best relevant item for each query (1 = first).

    Args:
        queries: float `(n, dim)`; items: float `(m, dim)`.
        relevant: int array `(n,)`, the one relevant item of each query (pair relevance), or
            None with labels.
        query_labels, item_labels: int arrays `(n,)`, `(m,)`: every item of the query's label is
            relevant (class relevance). A query whose label no item has gets rank `m + 1`.
        batch_size: int, queries scored at once. Defaults to `1024`.

    Returns:
        int64 array `(n,)`.
    """
    queries, items = _as_embeddings(queries, "queries"), _as_embeddings(items, "items")
    batch_size = _check_batch_size(batch_size)
    result = np.zeros(len(queries), "int64")
    for start in range(0, len(queries), batch_size):
        stop = min(start + batch_size, len(queries))
        similarity = queries[start:stop] @ items.T
        if relevant is not None:
            best = similarity[np.arange(stop - start), relevant[start:stop]]
            is_relevant = np.zeros_like(similarity, dtype=bool)
            is_relevant[np.arange(stop - start), relevant[start:stop]] = True
        else:
            is_relevant = query_labels[start:stop, None] == item_labels[None, :]
            best = np.where(is_relevant, similarity, -np.inf).max(axis=1)
        result[start:stop] = 1 + np.sum((similarity > best[:, None]) & ~is_relevant, axis=1)
    return result


def rank_metrics(rank_values, prefix="", ks=KS):
    """`{prefix}recall@K` for each K, `{prefix}median_rank` and `{prefix}mrr` from ranks.

    Example:

    >>> rank_metrics(np.array([1, 2, 20]), "t2i_", ks=(1, 5))
    {'t2i_recall@1': 0.3333333333333333, 't2i_recall@5': 0.6666666666666666, 't2i_median_rank': 2.0, 't2i_mrr': 0.5166666666666667}
    """
    rank_values = np.asarray(rank_values)
    metrics = {f"{prefix}recall@{k}": float(np.mean(rank_values <= k)) for k in ks}
    metrics[f"{prefix}median_rank"] = float(np.median(rank_values))
    metrics[f"{prefix}mrr"] = float(np.mean(1.0 / rank_values))
    return metrics


def retrieval_metrics(image_embeddings, text_embeddings, labels=None, ks=KS, batch_size=1024):
    """Recall@K, median rank and MRR, text -> image (`t2i_`) and image -> text (`i2t_`).

    Pair `i` is image `i` with text `i` (the one relevant item, pair relevance). With `labels`
    (the class of each pair), the class-level metrics (`class_t2i_`, `class_i2t_`) count every
    item of the query's class as relevant. See the module doc.

    Args:
        image_embeddings, text_embeddings: float arrays `(n, dim)`, row `i` a pair.
        labels: int array `(n,)` or None.
        ks: the K of Recall@K. Defaults to `(1, 5, 10)`.
        batch_size: int, queries scored at once. Defaults to `1024`.

    Returns:
        dict of floats.
    """
    images = _as_embeddings(image_embeddings, "image_embeddings")
    texts = _as_embeddings(text_embeddings, "text_embeddings")
    if images.shape != texts.shape:
        raise ValueError(
            "`image_embeddings` and `text_embeddings` must be pairs of the same shape. "
            f"Received: {images.shape} and {texts.shape}"
        )
    pairs = np.arange(len(images))
    metrics = {
        **rank_metrics(ranks(texts, images, relevant=pairs, batch_size=batch_size), "t2i_", ks),
        **rank_metrics(ranks(images, texts, relevant=pairs, batch_size=batch_size), "i2t_", ks),
    }
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"`labels` must be one int class per pair, shape ({len(images)},). "
                f"Received: labels of shape {labels.shape} and dtype {labels.dtype}"
            )
        for prefix, queries, items in (("class_t2i_", texts, images), ("class_i2t_", images, texts)):
            found = ranks(queries, items, query_labels=labels, item_labels=labels, batch_size=batch_size)
            metrics.update(rank_metrics(found, prefix, ks))
    return metrics
