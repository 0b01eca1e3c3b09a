"""`HeadTask`: a task whose outputs are heads (binary, multiclass, multilabel, regression, multi-task).

The head is the only source of what the outputs mean: the loss and metrics `compile()` uses,
how labels are checked, how outputs become answers (`postprocess`, `answer`) and which named
tensors the exported graph returns (`serving_endpoints`).
"""

import keras

from mmkeras.heads import MultiTaskHead, get_head
from mmkeras.tasks import serving
from mmkeras.tasks.task import Task
from mmkeras.validation import check_one_of, received

# The optimizers `compile()` makes from a name and a learning rate (names are case-insensitive).
OPTIMIZERS = tuple(
    name.lower()
    for name in (
        "Adadelta", "Adafactor", "Adagrad", "Adam", "Adamax", "AdamW", "Ftrl", "Lion", "Muon", "Nadam",
        "RMSprop", "ScheduleFreeAdamW", "SGD",
    )
    if hasattr(keras.optimizers, name)
)

# What an absent modality is, in a request to a model with `missing_modalities` (see mmkeras.missing).
ABSENT_RAW = {"image": "; empty bytes: no image", "text": "; an empty string: no text", "token_ids": "; an empty string: no text"}
ABSENT_TENSOR = {"image": "; all NaN: no image", "text": "; an empty string: no text", "token_ids": "; all 0: no text"}


class HeadTask(Task):
    """Base of the tasks that end in `mmkeras.heads` heads (see `FusionClassifier`, `ModelTask`).

    Args:
        inputs, outputs, input_kinds, preprocessor, name: as for `Task`; the outputs are named
            after the head (a dict of them for a multi-task head).
        head: a `mmkeras.heads` head (or `MultiTaskHead`).
        optimizer: str, the name of the optimizer `compile()` uses, one of `OPTIMIZERS`
            (case-insensitive). Defaults to `"adam"`.
        learning_rate: float, its learning rate. Defaults to `1e-3`.
    """

    def __init__(self, inputs, outputs, *, head, input_kinds, optimizer="adam", learning_rate=1e-3, **kwargs):
        self._head = get_head(head)
        if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
            check_one_of("optimizer", optimizer, OPTIMIZERS)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise ValueError(f"`learning_rate` must be a positive number. {received('learning_rate', learning_rate)}")
        self._optimizer_name = optimizer
        self._learning_rate = float(learning_rate)
        super().__init__(inputs, outputs, input_kinds=input_kinds, **kwargs)
        self._check_output_names()

    @property
    def head(self):
        """The head: what the outputs are, their loss, metrics and post-processing."""
        return self._head

    @property
    def multi_output(self):
        return isinstance(self._head, MultiTaskHead)

    def _check_output_names(self):
        names = list(self._head.output_names)
        served = list(self.serving_outputs_names())
        clashes = sorted({n for n in served if served.count(n) > 1})
        if clashes:
            raise ValueError(
                f"The head's output names clash with the exported outputs {clashes} (e.g. the top class "
                f"of an output is served as `<name>_class`): rename an output. Received: outputs {names}"
            )

    def _heads(self):
        return list(self._head.heads.values()) if self.multi_output else [self._head]

    @staticmethod
    def _served(head):
        """`{tensor name: (dtype, shape)}` that the serving endpoints return for one head."""
        served = {head.name: ("float32", [None, head.units])}
        if head.kind in ("binary", "multiclass"):
            served[f"{head.name}_class"] = ("string", [None])
        if head.kind == "binary" and head.from_logits:
            served[f"{head.name}_probability"] = ("float32", [None, 1])
        if head.kind == "multilabel":
            served[f"{head.name}_on"] = ("int32", [None, head.units])
        return served

    def serving_outputs_names(self):
        """The names of the tensors the serving endpoints return."""
        return [name for head in self._heads() for name in self._served(head)]

    # Preprocessor and labels.

    def check_preprocessor(self, preprocessor):
        super().check_preprocessor(preprocessor)
        names = preprocessor.class_names
        if names is None:
            return
        if self.multi_output:
            self._head.check_class_names(names)
        elif isinstance(names, dict):
            if set(names) != {self._head.name}:
                raise ValueError(
                    f"`class_names` given as a dict must have the one key {self._head.name!r} (the output). "
                    f"Received: class_names keys {sorted(names)}"
                )
            self._head.check_class_names(names[self._head.name])
        else:
            self._head.check_class_names(names)

    def class_names(self):
        """The class names the answers use: a list (one output), a dict (multi-task) or None."""
        names = self.preprocessor.class_names
        if self.multi_output or not isinstance(names, dict):
            return names
        return names.get(self._head.name)

    def check_labels(self, labels):
        return self._head.check_labels(labels)

    # Compile, answers.

    def compile_defaults(self):
        optimizer = keras.optimizers.get({"class_name": self._optimizer_name, "config": {"learning_rate": self._learning_rate}})
        return {"optimizer": optimizer, **self._head.compile_args()}

    def postprocess(self, outputs, top_k=3):
        """Outputs (as `predict` returns them) -> one answer dict per example.

        Binary and multiclass heads give `{"answer": class name, "probability": p, "top": [(name,
        p), ...]}`; multilabel `{"answer": [names on], "probabilities": {name: p}}`; regression
        `{"answer": value}`; a multi-task head a dict of those, one per output.
        """
        if self.multi_output and not isinstance(outputs, dict):
            outputs = dict(zip(self._head.output_names, outputs))
        return self._head.postprocess(outputs, self.class_names(), top_k=top_k)

    def answer(self, image=None, text=None, *, top_k=3, batch_size=64):
        """Answer raw inputs: images (file paths, encoded bytes or an array) and raw strings.

        Images are decoded and resized, texts tokenized, exactly as in training (the task's
        preprocessor), then the outputs are post-processed (`postprocess`).

        Args:
            image: a sequence of image file paths or encoded bytes, or an array `(n, h, w, c)`;
                leave out for a text-only model.
            text: a sequence of strings; leave out for an image-only model.
            top_k: int, how many classes each answer lists under `top`. Defaults to `3`.
            batch_size: int. Defaults to `64`.

        Returns:
            A list with one answer dict per example (see `postprocess`).

        Example:

        >>> import mmkeras, numpy as np
        >>> model = mmkeras.get_model("s3", image_shape=(32, 32, 3))
        >>> answers = model.answer(image=np.zeros((2, 40, 40, 3), "uint8"))
        >>> len(answers), sorted(answers[0])
        (2, ['answer', 'probability', 'top'])
        """
        raw = {"image": image, "text": text}
        inputs = self.prepare_inputs(**{name: raw.get(name) for name in self.input_kinds})
        outputs = self.predict(inputs, batch_size=batch_size, verbose=0)
        return self.postprocess(outputs, top_k=top_k)

    # Serving.

    def _input_specs(self):
        return {name: self.input[name] for name in self.input_kinds}

    def serving_outputs(self, outputs):
        """Named output tensors for an exported graph (the head's values and class strings)."""
        if self.multi_output:
            return self._head.serving_outputs(outputs, self.class_names())
        if isinstance(outputs, dict):
            outputs = outputs[self._head.name]
        return self._head.serving_outputs(outputs, self.class_names())

    def _serve(self, features):
        return self.serving_outputs(self(features, training=False))

    def serving_endpoints(self):
        import tensorflow as tf

        kinds = self.input_kinds
        specs = self._input_specs()

        vocab_sizes = {name: self.token_vocab_size(name) for name, kind in kinds.items() if kind == "token_ids"}
        absent = self.missing_modalities  # empty bytes, an empty string or a NaN image: an absent modality

        def empty_outputs():
            outputs = {}
            for head in self._heads():
                for name, (dtype, shape) in self._served(head).items():
                    outputs[name] = tf.zeros([0, *shape[1:]], dtype)
            return outputs

        def model_inputs(features):
            features = dict(features)
            for name, kind in kinds.items():
                if kind == "image":
                    images = self.preprocessor.decode_images(features[name], name, empty_as_absent=absent)
                    features[name] = tf.cast(images, specs[name].dtype)
                elif kind == "token_ids":
                    features[name] = tf.cast(self.preprocessor.texts_to_ids(features[name]), specs[name].dtype)
            return self._serve(features)

        def serve(request):
            return serving.empty_or(serving.raw_request(request, kinds, absent), model_inputs, empty_outputs)

        def serve_tensors(request):
            checked = serving.tensor_request(request, specs, kinds, vocab_sizes, absent)
            return serving.empty_or(checked, self._serve, empty_outputs)

        return {
            serving.SERVING_SIGNATURE: (serve, [serving.raw_signature(kinds)]),
            serving.TENSORS_SIGNATURE: (serve_tensors, [serving.tensor_signature(specs)]),
        }

    def serving_description(self):
        outputs = {}
        for head in self._heads():
            for name, (dtype, shape) in self._served(head).items():
                outputs[name] = {"dtype": dtype, "shape": shape}
            outputs[head.name]["head"] = head.kind
        specs = self._input_specs()
        raw = {
            name: {
                "dtype": "string",
                "shape": [None],
                "content": ("encoded image bytes (JPEG or PNG)" if kind == "image" else "raw text")
                + (ABSENT_RAW[kind] if self.missing_modalities else ""),
            }
            for name, kind in self.input_kinds.items()
        }
        tensors = {
            name: {
                "dtype": str(specs[name].dtype),
                "shape": [None, *specs[name].shape[1:]],
                "content": serving.INPUT_CONTENT[kind] + (ABSENT_TENSOR[kind] if self.missing_modalities else ""),
            }
            for name, kind in self.input_kinds.items()
        }
        return {
            serving.SERVING_SIGNATURE: {"inputs": raw, "outputs": outputs},
            serving.TENSORS_SIGNATURE: {"inputs": tensors, "outputs": outputs},
        }

    def get_config(self):
        return {
            **super().get_config(),
            "head": self._head.get_config(),
            "optimizer": self._optimizer_name,
            "learning_rate": self._learning_rate,
        }
