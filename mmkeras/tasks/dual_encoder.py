"""`DualEncoder`: an image tower and a text tower in one embedding space (CLIP, SigLIP).

Each tower is any registered encoder (a `keras.applications` backbone included) followed by a
linear projection to `embedding_dim` and L2 normalisation, so the similarity of an image and a
text is the cosine of their embeddings. Training pulls the pairs of a batch together and pushes
every other pairing apart:

- `loss="contrastive"`: the symmetric InfoNCE loss of CLIP (Radford et al. 2021): softmax
  cross-entropy of each image over the batch's texts and of each text over its images, with a
  learnable temperature (the logit scale, kept in log form and clamped at 100, as CLIP does);
- `loss="sigmoid"`: the pairwise sigmoid loss of SigLIP (Zhai et al. 2023): each image-text pair
  of the batch is a binary match / no match, with a learnable scale and bias.

Under a `tf.distribute` strategy the negatives come from **all replicas**: each replica gathers
the embeddings of the whole global batch (`all_gather`, which is differentiable) and scores its
own rows against them, so the loss and its gradients equal those of one device on the global
batch (`tests/test_dual_encoder.py` checks it on two logical CPU devices).

The task encodes raw inputs (`encode_images`, `encode_texts`), searches (`search`, over
`mmkeras.retrieval.EmbeddingIndex`), classifies zero-shot from class names and prompt templates
(`zero_shot_classify`), measures retrieval (`retrieval_metrics`) and exports `embed_image`,
`embed_text` and a `serving_default` that scores images against texts.
"""

import math

import keras
import numpy as np

from mmkeras.parts import build_image_encoder, build_text_encoder, deserialize_part, serialize_part
from mmkeras.preprocessing import as_string_array
from mmkeras.tasks import serving
from mmkeras.tasks.head_task import OPTIMIZERS
from mmkeras.tasks.task import OwnLossTask, optional_class_labels, resolve_text_input
from mmkeras.validation import check_bool, check_image_shape, check_one_of, check_positive_int, received

LOSSES = ("contrastive", "sigmoid")
OUTPUTS = ("image_embedding", "text_embedding")
DEFAULT_TEMPLATES = ("a photo of a {}",)


@keras.saving.register_keras_serializable(package="mmkeras")
class LogitScale(keras.layers.Layer):
    """The learnable scale (and, for the sigmoid loss, bias) of the similarity logits.

    The scale is kept as its logarithm, starts at `initial_scale` and is clamped at `max_scale`
    (CLIP starts at 1 / 0.07 and clamps at 100; SigLIP starts at 10 with a bias of -10).

    Args:
        initial_scale: float > 0. Defaults to `1 / 0.07`.
        max_scale: float >= initial_scale. Defaults to `100.0`.
        initial_bias: float or None: a learnable bias added to the logits (sigmoid loss).
        trainable_scale: bool, learn the scale (False keeps it fixed). Defaults to `True`.

    Example:

    >>> scale = LogitScale(initial_scale=10.0)
    >>> float(keras.ops.convert_to_numpy(scale(keras.ops.ones((1, 1))))[0, 0])
    10.0
    """

    def __init__(self, initial_scale=1 / 0.07, max_scale=100.0, initial_bias=None, trainable_scale=True, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("initial_scale", initial_scale), ("max_scale", max_scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
        if max_scale < initial_scale:
            raise ValueError(
                f"`max_scale` must be at least `initial_scale` ({initial_scale}). Received: max_scale={max_scale!r}"
            )
        if initial_bias is not None and (isinstance(initial_bias, bool) or not isinstance(initial_bias, (int, float))
                                         or not math.isfinite(initial_bias)):
            raise ValueError(f"`initial_bias` must be a finite number or None. Received: initial_bias={initial_bias!r}")
        self.initial_scale, self.max_scale = float(initial_scale), float(max_scale)
        self.initial_bias = None if initial_bias is None else float(initial_bias)
        self.trainable_scale = check_bool("trainable_scale", trainable_scale)
        self.log_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(self.initial_scale)),
            trainable=self.trainable_scale, name="log_scale", dtype="float32",
        )
        self.bias = None
        if self.initial_bias is not None:
            self.bias = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(self.initial_bias), name="bias", dtype="float32"
            )
        self.built = True

    def scale(self):
        """The current scale, `exp(log_scale)` clamped at `max_scale`."""
        return keras.ops.exp(keras.ops.minimum(self.log_scale, math.log(self.max_scale)))

    def call(self, similarity):
        logits = keras.ops.cast(similarity, "float32") * self.scale()
        return logits if self.bias is None else logits + self.bias

    def get_config(self):
        return {
            **super().get_config(),
            "initial_scale": self.initial_scale,
            "max_scale": self.max_scale,
            "initial_bias": self.initial_bias,
            "trainable_scale": self.trainable_scale,
        }


def _replicas():
    """The number of replicas in sync (1 outside a `tf.distribute` strategy or on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def _gather_across_replicas(images, texts):
    """`(all_images, all_texts, offset)`: the global batch's embeddings and where ours start.

    Outside a multi-replica strategy: the local tensors and offset 0. Inside one, the embeddings
    of every replica (`all_gather`, differentiable: each replica's gradient reaches the others).
    """
    if _replicas() == 1:
        return images, texts, 0
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    sizes = context.all_gather(tf.shape(images)[:1], axis=0)  # local batches may differ (last batch)
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    offset = tf.reduce_sum(sizes[:replica])
    return context.all_gather(images, axis=0), context.all_gather(texts, axis=0), offset


def _per_replica(local_sum, local):
    """A replica's loss as Keras expects it from `compute_loss`: its rows' mean over the number of
    replicas. Summed over replicas that is the global batch's loss (`mmkeras.distribute`'s loop
    weights each replica by its share of the global batch, so an uneven last batch is exact too)."""
    ops = keras.ops
    return local_sum / (ops.maximum(ops.cast(local, "float32"), 1.0) * float(_replicas()))


def contrastive_loss(images, texts, logit_scale, gather=True):
    """This replica's share of the symmetric InfoNCE loss (CLIP) of a batch of pairs.

    Args:
        images, texts: L2-normalised embeddings `(batch, dim)`, row `i` a pair.
        logit_scale: a `LogitScale`.
        gather: bool, take the negatives from every replica (under a strategy). Defaults to `True`.

    Returns:
        A scalar: the mean over this replica's rows of the image->text and text->image
        cross-entropies (each row scored against the whole global batch), halved, divided by the
        number of replicas (Keras' convention for `compute_loss`, see `_per_replica`).
    """
    ops = keras.ops
    images, texts = ops.cast(images, "float32"), ops.cast(texts, "float32")
    all_images, all_texts, offset = _gather_across_replicas(images, texts) if gather else (images, texts, 0)
    local = ops.shape(images)[0]
    targets = ops.arange(local) + offset
    image_to_text = logit_scale(ops.matmul(images, ops.transpose(all_texts)))
    text_to_image = logit_scale(ops.matmul(texts, ops.transpose(all_images)))
    cross_entropy = keras.losses.sparse_categorical_crossentropy
    total = ops.sum(cross_entropy(targets, image_to_text, from_logits=True)) + ops.sum(
        cross_entropy(targets, text_to_image, from_logits=True)
    )
    return _per_replica(total / 2.0, local)


def sigmoid_loss(images, texts, logit_scale, gather=True):
    """This replica's share of the pairwise sigmoid loss (SigLIP) of a batch of pairs.

    Every (image, text) pair of the global batch is a binary example (match on the diagonal);
    this replica scores its own images against all texts. Returns the mean over its rows of each
    row's summed losses, divided by the number of replicas (see `contrastive_loss`); on one device,
    SigLIP's loss: the sum over all pairs divided by the batch size.
    """
    ops = keras.ops
    images, texts = ops.cast(images, "float32"), ops.cast(texts, "float32")
    _, all_texts, offset = _gather_across_replicas(images, texts) if gather else (images, texts, 0)
    logits = logit_scale(ops.matmul(images, ops.transpose(all_texts)))
    local, total = ops.shape(images)[0], ops.shape(all_texts)[0]
    match = ops.equal(ops.expand_dims(ops.arange(local) + offset, 1), ops.expand_dims(ops.arange(total), 0))
    signs = ops.where(match, 1.0, -1.0)
    return _per_replica(-ops.sum(ops.log_sigmoid(signs * logits)), local)


LOSS_FUNCTIONS = {"contrastive": contrastive_loss, "sigmoid": sigmoid_loss}


@keras.saving.register_keras_serializable(package="mmkeras")
class DualEncoder(OwnLossTask):
    """An image tower and a text tower that embed both modalities in one space (CLIP, SigLIP).

    Inputs are a dict of `"image"` `(batch, *image_shape)` floats in [0, 1] and `"text"` token
    ids `(batch, sequence_length)` (or raw strings with `raw_text=True`); the outputs are the
    L2-normalised `"image_embedding"` and `"text_embedding"` `(batch, embedding_dim)` of each
    pair. `compile()` needs no loss: the task computes its own (`loss`), with the negatives from
    every replica under a distribution strategy (see the module doc). Labels given to `fit` (a
    pair's class) are not used by the loss.

    Args:
        image_encoder: name in `mmkeras.encoders.IMAGE_ENCODERS`, a dict `{"kind": name, **args}`
            or a `keras.Model`. Defaults to `"cnn"`.
        text_encoder: name in `mmkeras.encoders.TEXT_ENCODERS`, a dict or a `keras.Model`.
            Defaults to `"rnn"`.
        embedding_dim: int, the width of the shared space. Defaults to `64`.
        loss: `"contrastive"` (CLIP's symmetric InfoNCE) or `"sigmoid"` (SigLIP). Defaults to
            `"contrastive"`.
        temperature: float, the initial temperature (the logit scale starts at 1 / temperature);
            None for the loss's own default (0.07 for contrastive, 0.1 for sigmoid).
        max_logit_scale: float, the clamp of the logit scale. Defaults to `100.0`.
        learn_temperature: bool, learn the temperature. Defaults to `True`.
        gather_negatives: bool, take negatives from every replica under a strategy. Defaults to
            `True`.
        image_shape, sequence_length, vocab_size, raw_text, text_vectorizer, preprocessor: as for
            `mmkeras.tasks.FusionClassifier`.
        optimizer: str, the optimizer `compile()` uses. Defaults to `"adam"`.
        learning_rate: float, for `compile()`. Defaults to `1e-3`.
        name: str. Defaults to `"dual_encoder"`.

    Example:

    >>> import numpy as np
    >>> model = DualEncoder(
    ...     image_encoder={"kind": "cnn", "filters": (8,), "output": "avg"},
    ...     text_encoder={"kind": "conv", "filters": 8}, embedding_dim=16,
    ...     image_shape=(16, 16, 3), sequence_length=6, vocab_size=50)
    >>> model.compile()
    >>> batch = {"image": np.random.rand(4, 16, 16, 3).astype("float32"),
    ...          "text": np.random.randint(1, 50, (4, 6)).astype("int32")}
    >>> history = model.fit(batch, epochs=1, batch_size=4, verbose=0)
    >>> sorted(model.predict(batch, verbose=0)), model.predict(batch, verbose=0)["image_embedding"].shape
    (['image_embedding', 'text_embedding'], (4, 16))
    """

    trains_on = ("retrieval",)
    own_loss = "contrastive or sigmoid loss (choose it with `DualEncoder(loss=...)`)"

    def __init__(
        self,
        image_encoder="cnn",
        text_encoder="rnn",
        *,
        embedding_dim=64,
        loss="contrastive",
        temperature=None,
        max_logit_scale=100.0,
        learn_temperature=True,
        gather_negatives=True,
        image_shape=(64, 64, 3),
        sequence_length=32,
        vocab_size=10000,
        raw_text=False,
        text_vectorizer=None,
        optimizer="adam",
        learning_rate=1e-3,
        preprocessor=None,
        name="dual_encoder",
        **kwargs,
    ):
        # === Arguments ===
        image_shape = check_image_shape("image_shape", image_shape)
        check_positive_int("embedding_dim", embedding_dim)
        check_one_of("loss", loss, LOSSES)
        check_bool("gather_negatives", gather_negatives)
        check_bool("learn_temperature", learn_temperature)
        if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                        or not 0 < temperature < math.inf):
            raise ValueError(f"`temperature` must be a positive number or None. Received: temperature={temperature!r}")
        if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
            check_one_of("optimizer", optimizer, OPTIMIZERS)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not 0 < learning_rate < math.inf:
            raise ValueError(f"`learning_rate` must be a positive number. {received('learning_rate', learning_rate)}")
        if image_encoder is None or text_encoder is None:
            raise ValueError(
                "A dual encoder needs both towers: `image_encoder` and `text_encoder` must be set. "
                f"Received: image_encoder={image_encoder!r}, text_encoder={text_encoder!r}"
            )
        preprocessor, raw_text, sequence_length, vocab_size = resolve_text_input(
            preprocessor, text_vectorizer, raw_text, image_shape, sequence_length, vocab_size
        )
        if temperature is None:
            temperature = 0.07 if loss == "contrastive" else 0.1

        # === Layers ===
        image_encoder, text_encoder = deserialize_part(image_encoder), deserialize_part(text_encoder)
        image_model = build_image_encoder(image_encoder, image_shape)
        text_model = build_text_encoder(text_encoder, sequence_length, vocab_size)
        for part, model in (("image_encoder", image_model), ("text_encoder", text_model)):
            if len(model.output_shape) != 2:
                raise ValueError(
                    f"`{part}` of a dual encoder must give one vector per example (e.g. a 'cnn' with "
                    f"output='avg', an 'rnn' or 'conv' text encoder); sequence stems such as 'patch' and "
                    f"'embedding' feed a single-stream fusion. Received: {part}={serialize_part(image_encoder if part == 'image_encoder' else text_encoder)!r} "
                    f"with output shape {model.output_shape}"
                )
        self.logit_scale = LogitScale(
            initial_scale=1.0 / temperature,
            max_scale=max_logit_scale,
            initial_bias=-10.0 if loss == "sigmoid" else None,
            trainable_scale=learn_temperature,
            dtype="float32",  # the logits stay float32 under mixed precision
            name="logit_scale",
        )

        # === Functional model ===
        image_input = keras.Input(image_shape, name="image")
        if raw_text:
            text_input = keras.Input((), dtype="string", name="text")
            token_ids = preprocessor.vectorizer(text_input)
        else:
            text_input = keras.Input((sequence_length,), dtype="int32", name="text")
            token_ids = text_input
        image_embedding = self._project(image_model(image_input), embedding_dim, "image")
        text_embedding = self._project(text_model(token_ids), embedding_dim, "text")
        super().__init__(
            {"image": image_input, "text": text_input},
            {"image_embedding": image_embedding, "text_embedding": text_embedding},
            input_kinds={"image": "image", "text": "text" if raw_text else "token_ids"},
            preprocessor=preprocessor,
            name=name,
            **kwargs,
        )
        # The towers alone (the same layers), for encoding one modality; not tracked twice.
        object.__setattr__(self, "_towers", {
            "image": keras.Model(image_input, image_embedding, name="image_tower"),
            "text": keras.Model(text_input, text_embedding, name="text_tower"),
        })

        # === Config ===
        self._config = {
            "image_encoder": serialize_part(image_encoder),
            "text_encoder": serialize_part(text_encoder),
            "embedding_dim": embedding_dim,
            "loss": loss,
            "temperature": float(temperature),
            "max_logit_scale": float(max_logit_scale),
            "learn_temperature": learn_temperature,
            "gather_negatives": gather_negatives,
            "image_shape": list(image_shape),
            "sequence_length": sequence_length,
            "vocab_size": vocab_size,
            "raw_text": raw_text,
            "optimizer": optimizer,
            "learning_rate": float(learning_rate),
        }

    @staticmethod
    def _project(features, embedding_dim, modality):
        x = keras.layers.Dense(embedding_dim, name=f"{modality}_projection")(features)
        return keras.layers.UnitNormalization(axis=-1, dtype="float32", name=f"{modality}_embedding")(x)

    @property
    def embedding_dim(self):
        return self._config["embedding_dim"]

    @property
    def loss_kind(self):
        """`"contrastive"` or `"sigmoid"`."""
        return self._config["loss"]

    def output_dependencies(self):
        """Each embedding depends on its own input only (the towers share nothing)."""
        return {"image_embedding": ["image"], "text_embedding": ["text"]}

    # Training.

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The contrastive (or sigmoid) loss of the batch's pairs; `y` and `sample_weight` are unused."""
        loss = LOSS_FUNCTIONS[self.loss_kind](
            y_pred["image_embedding"], y_pred["text_embedding"], self.logit_scale, self._config["gather_negatives"]
        )
        for extra in self.losses:  # regularisers of the towers, added as Keras' own compute_loss adds them
            loss = loss + keras.ops.cast(keras.ops.sum(extra), loss.dtype)
        return loss

    def check_labels(self, labels):
        """Labels are optional for a dual encoder: a class index per pair (for class-level metrics)."""
        return optional_class_labels(labels, "a dual encoder", "used for class-level retrieval metrics, not by the loss")

    # Encoding, search, zero-shot.

    def _encode(self, modality, values, batch_size, chunk=4096):
        check_positive_int("batch_size", batch_size)
        tower = self._towers[modality]
        parts = []
        for start in range(0, max(len(values), 1), chunk):  # decode a chunk at a time, not everything
            inputs = self.prepare_inputs_for(modality, values[start : start + chunk])
            if len(inputs) == 0:
                parts.append(np.zeros((0, self.embedding_dim), "float32"))
                continue
            for first in range(0, len(inputs), batch_size):  # direct calls: no predict function traced per size
                batch = tower(inputs[first : first + batch_size], training=False)
                parts.append(np.asarray(keras.ops.convert_to_numpy(batch), dtype="float32"))
        return np.concatenate(parts)

    def prepare_inputs_for(self, modality, values):
        """One modality's raw values -> the tower's input array (see `Task.prepare_inputs`)."""
        if modality == "image":
            return self.preprocessor.images(values, "images")
        if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and self.input_kinds["text"] == "token_ids":
            self.check_inputs({"text": values})
            return values.astype("int32")
        texts = as_string_array(values, "texts")
        if self.input_kinds["text"] == "text":
            return texts
        return self.preprocessor.texts_to_ids(texts).numpy() if len(texts) else np.zeros((0, self._config["sequence_length"]), "int32")

    def encode_images(self, images, batch_size=256):
        """L2-normalised embeddings `(n, embedding_dim)` of raw images.

        Args:
            images: image file paths, encoded bytes, or an array `(n, h, w, c)` (uint8, or
                floats in [0, 1]); decoded and resized as in training, a chunk at a time.
            batch_size: int. Defaults to `256`.
        """
        return self._encode("image", images, batch_size)

    def encode_texts(self, texts, batch_size=256):
        """L2-normalised embeddings `(n, embedding_dim)` of raw strings (or int token ids)."""
        return self._encode("text", texts, batch_size)

    def index_images(self, images, keys=None, batch_size=256):
        """An `EmbeddingIndex` of `images` (see `encode_images`), to search by text."""
        from mmkeras.retrieval import EmbeddingIndex

        return EmbeddingIndex(self.encode_images(images, batch_size), keys)

    def index_texts(self, texts, keys=None, batch_size=256):
        """An `EmbeddingIndex` of `texts` (keys default to the texts), to search by image."""
        from mmkeras.retrieval import EmbeddingIndex

        return EmbeddingIndex(self.encode_texts(texts, batch_size), list(texts) if keys is None else keys)

    def search(self, index, texts=None, images=None, k=10, batch_size=256):
        """Search `index` with raw queries: the `k` best `(key, similarity)` of each, best first.

        Args:
            index: an `EmbeddingIndex` (`index_images` to search by text, `index_texts` by image).
            texts: raw strings as queries; or `images` (paths, bytes or an array). Give one.
            k: int, results per query. Defaults to `10`.
            batch_size: int, for encoding and scoring. Defaults to `256`.

        Example:

        >>> import numpy as np
        >>> model = DualEncoder(image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"},
        ...                     text_encoder={"kind": "conv", "filters": 4}, embedding_dim=8,
        ...                     image_shape=(8, 8, 3), sequence_length=4, vocab_size=20)
        >>> index = model.index_images(np.zeros((5, 8, 8, 3), "uint8"), keys=list("abcde"))
        >>> [len(hits) for hits in model.search(index, texts=np.ones((2, 4), "int32"), k=3)]
        [3, 3]
        """
        from mmkeras.retrieval import EmbeddingIndex

        if not isinstance(index, EmbeddingIndex):
            raise ValueError(f"`index` must be a mmkeras.retrieval.EmbeddingIndex. {received('index', index)}")
        if (texts is None) == (images is None):
            raise ValueError("Give the queries as `texts` or as `images` (one of them). Received: "
                             f"texts={'None' if texts is None else 'given'}, images={'None' if images is None else 'given'}")
        queries = self.encode_texts(texts, batch_size) if texts is not None else self.encode_images(images, batch_size)
        return index.search(queries, k=k, batch_size=max(batch_size, 1024))

    def class_embeddings(self, class_names, templates=DEFAULT_TEMPLATES, batch_size=256):
        """One embedding per class: the normalised mean of its prompts' embeddings (CLIP's ensemble).

        Args:
            class_names: list of str.
            templates: prompt templates with one `{}` for the class name. Defaults to
                `("a photo of a {}",)`.
        """
        if isinstance(class_names, str) or not hasattr(class_names, "__len__") or len(class_names) < 2:
            raise ValueError(f"`class_names` must be a list of at least 2 names. {received('class_names', class_names)}")
        if isinstance(templates, str) or not hasattr(templates, "__len__") or not templates or not all(
            isinstance(t, str) and "{}" in t for t in templates
        ):
            raise ValueError(
                "`templates` must be a non-empty list of strings, each with one '{}' for the class name. "
                f"{received('templates', templates)}"
            )
        prompts = [template.format(name) for name in class_names for template in templates]
        embeddings = self.encode_texts(prompts, batch_size).reshape(len(class_names), len(templates), -1).mean(axis=1)
        return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)

    def zero_shot_probabilities(self, images, class_names, templates=DEFAULT_TEMPLATES, batch_size=256):
        """Class probabilities `(n, len(class_names))` of raw images from class-name prompts.

        The softmax over classes of the scaled similarity to each class's embedding
        (`class_embeddings`); for a sigmoid-loss model the same softmax over its logits.
        """
        classes = self.class_embeddings(class_names, templates, batch_size)
        logits = self.logit_scale(self.encode_images(images, batch_size) @ classes.T)
        return np.asarray(keras.ops.softmax(logits, axis=-1), dtype="float32")

    def zero_shot_classify(self, images, class_names, templates=DEFAULT_TEMPLATES, top_k=3, batch_size=256):
        """Classify raw images into `class_names`, zero-shot, from prompts (see `class_embeddings`).

        Returns:
            One answer per image, as a classifier gives them: `{"answer": class name,
            "probability": p, "top": [(class name, p), ...]}`.

        Example:

        >>> import numpy as np
        >>> from mmkeras.preprocessing import Preprocessor
        >>> model = DualEncoder(image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"},
        ...                     text_encoder={"kind": "conv", "filters": 4}, embedding_dim=8,
        ...                     image_shape=(8, 8, 3), sequence_length=4, vocab_size=20,
        ...                     preprocessor=Preprocessor(image_shape=(8, 8, 3), sequence_length=4,
        ...                                               vocabulary=["", "[UNK]", "a", "cat", "dog"]))
        >>> answer = model.zero_shot_classify(np.zeros((1, 8, 8, 3), "uint8"), ["cat", "dog"], ["a {}"])[0]
        >>> answer["answer"] in ("cat", "dog"), len(answer["top"])
        (True, 2)
        """
        check_positive_int("top_k", top_k)
        probabilities = self.zero_shot_probabilities(images, class_names, templates, batch_size)
        answers = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")[:top_k]
            answers.append({
                "answer": str(class_names[order[0]]),
                "probability": float(row[order[0]]),
                "top": [(str(class_names[i]), float(row[i])) for i in order],
            })
        return answers

    def retrieval_metrics(self, examples, batch_size=256, templates=DEFAULT_TEMPLATES):
        """Recall@1/5/10, median rank and MRR both ways (`mmkeras.retrieval.retrieval_metrics`) on
        an `Examples` of pairs; class-level too when it has labels, and the zero-shot accuracy
        (prompts from `templates` and the class names) when it also has class names."""
        from mmkeras.data.pipeline import Examples
        from mmkeras.retrieval import retrieval_metrics

        if not isinstance(examples, Examples):
            raise ValueError(f"`examples` must be a mmkeras.data.Examples of pairs. {received('examples', examples)}")
        dataset = examples.to_dataset(task=self, batch_size=batch_size, with_labels=False)
        outputs = self.predict(dataset, verbose=0)
        metrics = retrieval_metrics(outputs["image_embedding"], outputs["text_embedding"], examples.labels)
        if examples.labels is not None and examples.class_names:
            images = np.asarray(outputs["image_embedding"], "float32")
            classes = self.class_embeddings(examples.class_names, templates, batch_size)
            metrics["zero_shot_accuracy"] = float(np.mean((images @ classes.T).argmax(axis=1) == examples.labels))
        return metrics

    def extra_metrics(self, examples, batch_size=256):
        """The test metrics beyond the loss that `mmkeras.train` and `evaluate` report: the retrieval
        metrics, and the zero-shot accuracy from the built-in datasets' prompt templates."""
        from mmkeras.data.retrieval_datasets import ZERO_SHOT_TEMPLATES

        return self.retrieval_metrics(examples, batch_size, templates=ZERO_SHOT_TEMPLATES)

    # Answers.

    def postprocess(self, outputs, top_k=3):
        """Outputs -> one `{"similarity": cosine}` per pair (image `i` with text `i`)."""
        similarity = np.sum(np.asarray(outputs["image_embedding"]) * np.asarray(outputs["text_embedding"]), axis=1)
        return [{"similarity": float(s)} for s in similarity]

    def answer(self, image=None, text=None, *, top_k=3, batch_size=64):
        """The cosine similarity of each raw (image, text) pair: `[{"similarity": s}, ...]`."""
        inputs = self.prepare_inputs(image=image, text=text)
        return self.postprocess(self.predict(inputs, batch_size=batch_size, verbose=0), top_k=top_k)

    # Serving.

    def serving_endpoints(self):
        """`embed_image` (encoded bytes -> embedding), `embed_text` (strings -> embedding) and
        `serving_default` (bytes and strings -> the cosine similarity of every image with every
        text, and its scaled logits)."""
        import tensorflow as tf

        dim = self.embedding_dim
        text_kind = self.input_kinds["text"]

        def empty(name):
            return {name: tf.zeros([0, dim], tf.float32)}

        def image_embedding(request):
            images = serving.check_image_bytes(serving.check_tensor(request["image"], "image", (), "a batch of encoded images (tf.string)"), "image")
            def run(features):
                pixels = tf.cast(self.preprocessor.decode_images(features["image"], "image"), self.input["image"].dtype)
                return {"image_embedding": self._towers["image"](pixels, training=False)}
            return serving.empty_or({"image": images}, run, lambda: empty("image_embedding"))

        def text_embedding(request):
            texts = serving.check_tensor(request["text"], "text", (), "a batch of texts (tf.string)")
            def run(features):
                tokens = features["text"] if text_kind == "text" else self.preprocessor.texts_to_ids(features["text"])
                return {"text_embedding": self._towers["text"](tokens, training=False)}
            return serving.empty_or({"text": texts}, run, lambda: empty("text_embedding"))

        def similarity(request):
            images = image_embedding({"image": request["image"]})["image_embedding"]
            texts = text_embedding({"text": request["text"]})["text_embedding"]
            cosine = tf.matmul(images, texts, transpose_b=True)
            return {"similarity": cosine, "logits": self.logit_scale(cosine)}

        return {
            "embed_image": (image_embedding, [{"image": tf.TensorSpec(None, tf.string, name="image")}]),
            "embed_text": (text_embedding, [{"text": tf.TensorSpec(None, tf.string, name="text")}]),
            serving.SERVING_SIGNATURE: (similarity, [{"image": tf.TensorSpec(None, tf.string, name="image"),
                                                      "text": tf.TensorSpec(None, tf.string, name="text")}]),
        }

    def serving_description(self):
        dim = self.embedding_dim
        image = {"dtype": "string", "shape": [None], "content": "encoded image bytes (JPEG, PNG, GIF, BMP or WebP)"}
        text = {"dtype": "string", "shape": [None], "content": "raw text"}
        return {
            "embed_image": {"inputs": {"image": image}, "outputs": {"image_embedding": {"dtype": "float32", "shape": [None, dim]}}},
            "embed_text": {"inputs": {"text": text}, "outputs": {"text_embedding": {"dtype": "float32", "shape": [None, dim]}}},
            serving.SERVING_SIGNATURE: {
                "inputs": {"image": image, "text": text},
                "outputs": {
                    "similarity": {"dtype": "float32", "shape": [None, None], "content": "cosine of image i with text j"},
                    "logits": {"dtype": "float32", "shape": [None, None], "content": "similarity times the learned scale (plus bias)"},
                },
            },
        }

    # Config.

    def get_config(self):
        return {**super().get_config(), **self._config}
