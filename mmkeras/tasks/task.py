"""`Task`: the base of every zoo model, a `keras.Model` that knows what it is.

A task is built functionally in its constructor, and its `get_config` returns its constructor
arguments (parts given as objects are serialized explicitly), so `from_config` and
`keras.saving.load_model(..., safe_mode=True)` rebuild the same model. It carries, and is the
only source of:

- its **inputs** (`input_kinds`: `{"image": "image", "text": "token_ids" | "text"}`), which it
  checks on every call: an unknown input key is refused, never bound by position;
- its **preprocessor** (`task.preprocessor`, a `mmkeras.preprocessing.Preprocessor`: image
  shape, vocabulary, class names), saved inside its `.keras` file;
- its **compile defaults**: `task.compile()` with no arguments picks the loss, metrics and
  optimizer (any argument given explicitly wins);
- its **post-processing** (`postprocess`: outputs -> answers) and its **serving endpoints**
  (`serving_endpoints`: what `mmkeras.export_model` wraps).

`mmkeras.train`, `evaluate`, `predict`, `export_model`, the CLI and the tf.distribute loop talk to
this protocol only. A new family subclasses `Task` (or `HeadTask` when its outputs are heads) and
fills in the hooks below.
"""

import keras

from mmkeras.preprocessing import Preprocessor
from mmkeras.validation import check_one_of, received

INPUT_KINDS = ("image", "token_ids", "text")


def resolve_text_input(preprocessor, text_vectorizer, raw_text, image_shape, sequence_length, vocab_size):
    """The text arguments of a task, checked: `(preprocessor, raw_text, sequence_length, vocab_size)`.

    A `text_vectorizer` (an adapted `TextVectorization`) is shorthand for `raw_text=True` with a
    preprocessor made from it (keeping `preprocessor`'s class names); with `raw_text` the
    preprocessor must hold the vocabulary, and the sequence length and vocabulary size come from it.
    `image_shape` is the preprocessor's image shape (None for a text-only model).
    """
    from mmkeras.validation import check_bool, check_positive_int

    check_bool("raw_text", raw_text)
    if preprocessor is not None and not isinstance(preprocessor, Preprocessor):
        raise ValueError(f"`preprocessor` must be a mmkeras.preprocessing.Preprocessor or None. {received('preprocessor', preprocessor)}")
    if text_vectorizer is not None:
        if not isinstance(text_vectorizer, keras.layers.TextVectorization):
            raise ValueError(
                "`text_vectorizer` must be a keras.layers.TextVectorization (see "
                f"mmkeras.preprocessing.text_vectorizer). {received('text_vectorizer', text_vectorizer)}"
            )
        class_names = None if preprocessor is None else preprocessor.class_names
        preprocessor = Preprocessor.from_vectorizer(text_vectorizer, image_shape=image_shape, class_names=class_names)
        raw_text = True
    if raw_text:
        if preprocessor is None or preprocessor.vocabulary is None:
            raise ValueError(
                "`raw_text=True` tokenizes inside the graph, so `preprocessor` must hold the vocabulary "
                f"(or pass `text_vectorizer`). {received('preprocessor', preprocessor)}"
            )
        sequence_length, vocab_size = preprocessor.sequence_length, preprocessor.vocab_size
    check_positive_int("sequence_length", sequence_length)
    check_positive_int("vocab_size", vocab_size)
    return preprocessor, raw_text, sequence_length, vocab_size


class Task(keras.Model):
    """Base class of the mmkeras tasks (subclass it; it is not used directly).

    Class attribute `trains_on`: the dataset tasks (`mmkeras.defaults.SPLIT_TASKS`) the family
    trains on; `mmkeras.train` refuses any other dataset before loading it.

    Subclasses build their graph, then call
    `super().__init__(inputs=..., outputs=..., input_kinds=..., preprocessor=..., name=...)`.

    Args:
        inputs, outputs: the functional graph (dicts of `keras.Input` / output tensors).
        input_kinds: dict `{input_name: kind}` with kind `"image"` (float images),
            `"token_ids"` (int ids) or `"text"` (raw strings, tokenized inside the graph).
        preprocessor: a `Preprocessor`, or None for one that knows only the input shapes.
        name: str, the model's name.
    """

    trains_on = ("binary", "multiclass", "multilabel", "regression")

    def __init__(self, inputs, outputs, *, input_kinds, preprocessor=None, name=None, **kwargs):
        for key, kind in input_kinds.items():
            check_one_of(f"input_kinds[{key!r}]", kind, INPUT_KINDS)
        unknown = sorted(set(kwargs) - {"trainable"})  # keras.Model would drop them silently
        if unknown:
            raise ValueError(
                f"{type(self).__name__} got arguments it does not take: {unknown} (see "
                f"help({type(self).__name__})). Received: {', '.join(f'{k}={kwargs[k]!r}' for k in unknown)}"
            )
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self._input_kinds = tuple(input_kinds.items())
        self._preprocessor = None
        self.preprocessor = preprocessor if preprocessor is not None else self.default_preprocessor()

    # Inputs.

    @property
    def input_kinds(self):
        """`{input_name: "image" | "token_ids" | "text"}`, in the model's input order."""
        return dict(self._input_kinds)

    def call(self, inputs, training=None, mask=None, **kwargs):
        # The signature names `training` and `mask` as Functional.call does: Keras reads it to decide
        # what to pass (without them batch norm and dropout would never see training=True).
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - set(self.input_kinds))
            if unknown:
                raise ValueError(
                    f"The inputs of model {self.name!r} must be a dict with the keys {sorted(self.input_kinds)}; "
                    f"unknown keys are refused, since Keras would bind them by position. Received: keys "
                    f"{sorted(inputs)} (unknown: {unknown})"
                )
        return super().call(inputs, training=training, mask=mask, **kwargs)

    @property
    def missing_modalities(self):
        """True when the task answers with a modality absent (an image of NaN, an empty text; see
        `mmkeras.missing`). False by default."""
        return False

    def token_vocab_size(self, name="text"):
        """How many token ids input `name` takes (ids lie in [0, this)), or None when unknown.

        By default the largest `input_dim` of the model's `Embedding` layers; families that know
        their vocabulary size say so directly.
        """
        if self.input_kinds.get(name) != "token_ids":
            return None
        config = getattr(self, "_config", None)  # a family that keeps its arguments (None while building)
        if isinstance(config, dict) and config.get("vocab_size"):
            return config["vocab_size"]
        sizes = [layer.input_dim for layer in self._flatten_layers() if isinstance(layer, keras.layers.Embedding)]
        return max(sizes) if sizes else None

    def check_inputs(self, inputs):
        """Check array inputs (a dict of numpy arrays or eager tensors) before Keras runs them.

        Images must be floats in [0, 1] (no NaN or inf; uint8 images go through `answer` or
        `prepare_inputs`, which scale them), token ids ints in [0, `token_vocab_size`): a
        negative id would otherwise read the last row of the embedding. Returns the number of
        examples, or None when `inputs` are not arrays (a dataset or generator is not read here).
        """
        import numpy as np

        from mmkeras.data.pipeline import check_token_ids
        from mmkeras.missing import absent_images

        if not isinstance(inputs, dict) or not all(
            isinstance(v, np.ndarray) or hasattr(v, "numpy") for v in inputs.values()
        ):
            return None
        sizes = {}
        for name, value in inputs.items():
            kind = self.input_kinds.get(name)
            if kind is None:
                continue  # refused by `call`, with the message that names the unknown keys
            value = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
            shape = tuple(self.input[name].shape[1:])
            if value.ndim != len(shape) + 1 or any(d is not None and d != v for d, v in zip(shape, value.shape[1:])):
                expected = ", ".join(["n", *("?" if d is None else str(d) for d in shape)])
                raise ValueError(
                    f"`{name}` must be an array of shape ({expected}) for model {self.name!r}. "
                    f"Received: {name} of shape {value.shape}"
                )
            sizes[name] = len(value)
            if kind == "image":
                if value.dtype.kind != "f":
                    raise ValueError(
                        f"`{name}` must be float images in [0, 1] for model {self.name!r} (use "
                        f"`model.answer({name}=...)`, which scales uint8 images, or divide by 255). "
                        f"Received: {name} of dtype {value.dtype}"
                    )
                finite = np.isfinite(value)
                if self.missing_modalities:  # an image of NaN only is an absent one
                    finite |= absent_images(value).reshape(-1, *([1] * (value.ndim - 1)))
                if value.size and not np.all(finite):
                    bad = int(np.argwhere(~finite)[0][0])
                    raise ValueError(
                        f"`{name}` must hold finite values in [0, 1]. Received: {name}[{bad}] containing NaN or inf"
                    )
                values = value[finite] if self.missing_modalities else value
                if values.size and (values.min() < 0 or values.max() > 1):
                    raise ValueError(
                        f"`{name}` must hold values in [0, 1] (images in [0, 255] must be divided by 255). "
                        f"Received: {name} with values from {values.min()} to {values.max()}"
                    )
            elif kind == "token_ids":
                if value.dtype.kind not in "iu":
                    raise ValueError(
                        f"`{name}` must be int token ids (raw strings go through `model.answer({name}=...)`). "
                        f"Received: {name} of dtype {value.dtype}"
                    )
                check_token_ids(value, self.token_vocab_size(name), name)
        if len(set(sizes.values())) > 1:
            raise ValueError(f"The inputs must hold the same number of examples. Received: {sizes}")
        return next(iter(sizes.values()), None)

    def _empty_outputs(self):
        """Outputs with 0 rows, of the model's output shapes and dtypes (for an empty batch)."""
        import numpy as np

        def empty(tensor):
            return np.zeros((0, *tensor.shape[1:]), keras.backend.standardize_dtype(tensor.dtype))

        return keras.tree.map_structure(empty, self._outputs_struct if hasattr(self, "_outputs_struct") else self.outputs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, with array inputs checked first (`check_inputs`).

        An empty batch (0 examples) gives outputs with 0 rows, where Keras alone would fail.
        """
        if self.check_inputs(x) == 0:
            return self._empty_outputs()
        return super().predict(x, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self.check_inputs(x)
        return super().evaluate(x, y, *args, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        self.check_inputs(x)
        # A tf.data pipeline (what mmkeras.data makes) is shuffled in the pipeline, if at all: Keras
        # ignores `shuffle` for it, and warns on every call unless it is False.
        if not args and "shuffle" not in kwargs and type(x).__module__.startswith("tensorflow"):
            kwargs["shuffle"] = False
        return super().fit(x, y, *args, **kwargs)

    # Preprocessor.

    @property
    def preprocessor(self):
        """The task's `Preprocessor` (image shape, vocabulary, class names)."""
        return self._preprocessor

    @preprocessor.setter
    def preprocessor(self, value):
        if not isinstance(value, Preprocessor):
            raise ValueError(
                f"`preprocessor` must be a mmkeras.preprocessing.Preprocessor. {received('preprocessor', value)}"
            )
        self.check_preprocessor(value)
        self._preprocessor = value

    def default_preprocessor(self):
        """The preprocessor of a task built without one: the input shapes, no vocabulary."""
        shapes = {name: tuple(self.input[name].shape[1:]) for name in self.input_kinds}
        image = next((shapes[n] for n, k in self.input_kinds.items() if k == "image"), None)
        ids = next((shapes[n][0] for n, k in self.input_kinds.items() if k == "token_ids"), None)
        return Preprocessor(image_shape=image, sequence_length=ids)

    def check_preprocessor(self, preprocessor):
        """Raise `ValueError` unless `preprocessor` fits this task's inputs."""
        for name, kind in self.input_kinds.items():
            shape = tuple(self.input[name].shape[1:])
            if kind == "image" and preprocessor.image_shape is not None and preprocessor.image_shape != shape:
                raise ValueError(
                    f"`preprocessor.image_shape` must match the model's {name!r} input {shape}. "
                    f"Received: preprocessor.image_shape={preprocessor.image_shape}"
                )
            if kind == "token_ids" and preprocessor.sequence_length not in (None, shape[0]):
                raise ValueError(
                    f"`preprocessor.sequence_length` must equal the length of the model's {name!r} input "
                    f"({shape[0]}). Received: preprocessor.sequence_length={preprocessor.sequence_length}"
                )
            vocab_size = self.token_vocab_size(name) if kind == "token_ids" else None
            if vocab_size is not None and preprocessor.vocab_size is not None and preprocessor.vocab_size > vocab_size:
                raise ValueError(
                    f"`preprocessor.vocabulary` must have at most the {vocab_size} tokens the model's {name!r} "
                    f"input takes (its embedding's size): the tokens past it would have no embedding. "
                    f"Received: a vocabulary of {preprocessor.vocab_size} tokens"
                )

    def prepare_inputs(self, **raw):
        """Raw inputs -> the model's tensors (numpy), decoded and tokenized as in training.

        Args:
            **raw: one sequence per input name: images as file paths, encoded bytes or an array
                `(n, h, w, c)`; texts as raw strings (or int token ids `(n, length)`). A task with
                `missing_modalities` also takes an input left out (None: absent in every example)
                and, per example, an image given as None or empty bytes and a text given as None
                or `""` (absent; see `mmkeras.missing`).
        """
        unknown = sorted(set(raw) - set(self.input_kinds))
        missing = sorted(n for n in self.input_kinds if raw.get(n) is None)
        absent_allowed = self.missing_modalities and len(missing) < len(self.input_kinds)
        if unknown or (missing and not absent_allowed):
            raise ValueError(
                f"Model {self.name!r} takes the inputs {sorted(self.input_kinds)}. Received: "
                + ", ".join(
                    part
                    for part in (f"unknown {unknown}" if unknown else "", f"missing {missing}" if missing else "")
                    if part
                )
                + (
                    " (a model built with missing_modalities=True, e.g. trained with modality_dropout, answers "
                    "with a modality absent)"
                    if missing and not unknown and len(missing) < len(self.input_kinds) else ""
                )
            )
        features = {name: self._prepare_input(name, raw[name]) for name in self.input_kinds if name not in missing}
        sizes = {name: len(v) for name, v in features.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"The inputs must hold the same number of examples. Received: {sizes}")
        for name in missing:  # absent in every example
            count = next(iter(sizes.values()))
            features[name] = self._prepare_input(name, [None] * count)
        return {name: features[name] for name in self.input_kinds}

    def _prepare_input(self, name, value):
        import numpy as np

        from mmkeras.missing import missing_images
        from mmkeras.preprocessing import as_string_array

        kind = self.input_kinds[name]
        array = value.numpy() if hasattr(value, "numpy") else value
        if kind == "image":
            if not self.missing_modalities or isinstance(array, np.ndarray):
                return self.preprocessor.images(value, name)
            items = list(value)
            kept = [i for i, item in enumerate(items) if not (item is None or (isinstance(item, (str, bytes)) and not item))]
            if len(kept) == len(items):
                return self.preprocessor.images(value, name)
            images = missing_images(len(items), self.preprocessor.image_shape)
            if kept:
                images[kept] = self.preprocessor.images([items[i] for i in kept], name)
            return images
        if kind == "token_ids" and isinstance(array, np.ndarray) and array.dtype.kind in "iu":
            return array.astype("int32")
        if self.missing_modalities and not isinstance(array, np.ndarray):
            value = ["" if item is None else item for item in value]
        texts = as_string_array(value, name)
        return texts if kind == "text" else self.preprocessor.texts_to_ids(texts).numpy()

    def output_dependencies(self):
        """`{output_name: [input names it depends on]}`: by default every output on every input
        (a dual encoder's embeddings each depend on one input only)."""
        return {name: list(self.input_kinds) for name in self.output_names}

    def class_names(self):
        """The class names the preprocessor holds (a list, a dict by output, or None)."""
        return self.preprocessor.class_names

    def extra_metrics(self, examples, batch_size=256):
        """Test metrics beyond `evaluate`'s that `mmkeras.train` and `mmkeras.evaluate` report for
        `examples` (a `mmkeras.data.Examples`); none by default."""
        return {}

    def training_optimizer(self, learning_rate, total_steps, warmup):
        """The optimizer `mmkeras.train` compiles the task with: by default Adam with a linear
        warm-up over `warmup` of the `total_steps`, then cosine decay (a GAN keeps its own)."""
        from mmkeras.training.reporting import learning_rate_schedule

        return keras.optimizers.Adam(learning_rate_schedule(learning_rate, total_steps, warmup))

    def training_callbacks(self):
        """Keras callbacks `mmkeras.train` adds to the task's training (e.g. a GAN's sample grids);
        none by default."""
        return []

    def run_files(self):
        """`{relative_path: bytes}` that `mmkeras.train` writes into the run folder beside the model,
        each path under `samples/` (e.g. the sample grids its `training_callbacks` kept); none by default."""
        return {}

    # Hooks each family fills in.

    def compile_defaults(self):
        """`{"optimizer": ..., "loss": ..., "metrics": ...}` used by `compile()` for "auto"."""
        raise NotImplementedError

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with the task's defaults: `compile()` with no arguments works.

        Args:
            optimizer: `"auto"` (the task's optimizer and learning rate) or any Keras optimizer.
            loss: `"auto"` (the task's loss) or any Keras loss argument.
            metrics: `"auto"` (the task's metrics) or any Keras metrics argument.
            **kwargs: the other arguments of `keras.Model.compile`; for `loss_weights` the
                task's own are used when `loss` is `"auto"` and none are given.
        """
        defaults = self.compile_defaults()
        if optimizer == "auto":
            optimizer = defaults["optimizer"]
        if loss == "auto":
            loss = defaults["loss"]
            if "loss_weights" in defaults:
                kwargs.setdefault("loss_weights", defaults["loss_weights"])
        if metrics == "auto":
            metrics = defaults["metrics"]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        """Recompile a loaded task as it was saved (Keras skips models with their own `compile`)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def check_labels(self, labels):
        """Raise `ValueError` unless `labels` can train this task; return them checked."""
        raise NotImplementedError

    def postprocess(self, outputs, top_k=3):
        """Model outputs (numpy, as `predict` returns them) -> one answer per example."""
        raise NotImplementedError

    def serving_endpoints(self):
        """`{signature_name: (function, input_signature)}` for `mmkeras.export_model`."""
        raise NotImplementedError

    def serving_resources(self):
        """Objects the exported graph uses besides the model: the preprocessor's vocabulary when
        the model takes token ids (its raw-string signatures tokenize with it), else none."""
        if "token_ids" not in self.input_kinds.values():
            return []
        import tensorflow as tf

        self.preprocessor.texts_to_ids(tf.constant([""]))  # builds the vocabulary table
        return [self.preprocessor.vectorizer]

    def serving_description(self):
        """The signatures' inputs and outputs, for the export's `mmkeras_export.json`."""
        return {}

    # Config.

    def get_config(self):
        """The constructor arguments; subclasses add theirs to this."""
        return {
            "name": self.name,
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("preprocessor"), dict):
            config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        return cls(**config)


def optional_class_labels(labels, what, use):
    """Labels a task may take but does not train on: None, or one int class index per example.

    `what` names the task in the error ("a dual encoder"), `use` says what the labels are for.
    """
    import numpy as np

    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"`labels` of {what} must be one int class index per pair ({use}). "
            f"Received: labels of shape {labels.shape} and dtype {labels.dtype}"
        )
    return labels


class OwnLossTask(Task):
    """A task that computes its own loss (`compute_loss`): `compile()` takes its optimizer and
    learning rate from the task's arguments (`self._config["optimizer"]`, `["learning_rate"]`) and
    refuses any other loss. Subclasses say what their loss is in `own_loss`."""

    own_loss = "loss"

    def compile_defaults(self):
        optimizer = keras.optimizers.get(
            {"class_name": self._config["optimizer"], "config": {"learning_rate": self._config["learning_rate"]}}
        )
        return {"optimizer": optimizer, "loss": None, "metrics": None}

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with the task's optimizer; the loss is the task's own.

        Args:
            optimizer: `"auto"` or any Keras optimizer.
            loss: `"auto"` or None (the task's own loss); another loss is refused.
            metrics: `"auto"` or None.
        """
        if loss not in ("auto", None):
            raise ValueError(
                f"`loss` of a {type(self).__name__} is its own {self.own_loss}; leave it out of compile(). "
                f"Received: loss={loss!r}"
            )
        super().compile(optimizer=optimizer, loss="auto", metrics=metrics, **kwargs)
