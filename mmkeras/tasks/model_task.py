"""`ModelTask`: any Keras model with dict inputs, made a task by naming its head.

For a model mmkeras did not build (your own functional model, or a `.keras` file written by
mmkeras 0.1, which stored no head): say what its outputs are (`head=`) and it gets everything a
task has: `compile()` defaults, `answer`, post-processing, export with raw bytes and strings in.
"""

import keras

from mmkeras.heads import get_head
from mmkeras.parts import deserialize_part
from mmkeras.tasks.head_task import HeadTask
from mmkeras.validation import received


def _input_kind(name, tensor):
    dtype, rank = str(tensor.dtype), len(tensor.shape) - 1
    if dtype == "string" and rank == 0:
        return "text"
    if dtype.startswith(("float", "bfloat")) and rank == 3:
        return "image"
    if dtype.startswith(("int", "uint")) and rank == 1:
        return "token_ids"
    raise ValueError(
        f"The input {name!r} must be images (float, (batch, height, width, channels)), token ids (int, "
        f"(batch, length)) or strings ((batch,)). Received: dtype {dtype} and shape {tuple(tensor.shape)}"
    )


@keras.saving.register_keras_serializable(package="mmkeras")
class ModelTask(HeadTask):
    """A task around a ready Keras model whose outputs are described by `head`.

    Args:
        model: a functional `keras.Model` whose input is a dict (`"image"`, `"text"`, ...) and
            whose outputs are the head's outputs (one tensor, or a dict keyed by the multi-task
            head's output names).
        head: the head its outputs are (a name, a spec dict such as
            `{"kind": "multiclass", "num_classes": 7, "name": "answer"}`, or a head object).
            Only its meaning is used: no layer is added.
        preprocessor: a `mmkeras.preprocessing.Preprocessor`, or None. Defaults to `None`.
        optimizer: str, the name of the optimizer `compile()` uses (see `HeadTask`). Defaults to `"adam"`.
        learning_rate: float. Defaults to `1e-3`.
        name: str or None, defaults to the wrapped model's name.

    Example:

    >>> inputs = {"image": keras.Input((8, 8, 3), name="image")}
    >>> x = keras.layers.GlobalAveragePooling2D()(inputs["image"])
    >>> mine = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    >>> task = ModelTask(mine, head={"kind": "multiclass", "num_classes": 3, "name": "kind"})
    >>> task.output_names, task.input_kinds
    (['kind'], {'image': 'image'})
    """

    def __init__(self, model, head, *, preprocessor=None, optimizer="adam", learning_rate=1e-3, name=None, **kwargs):
        model = deserialize_part(model)
        if not isinstance(model, keras.Model) or not isinstance(getattr(model, "input", None), dict):
            raise ValueError(
                f"`model` must be a functional keras.Model whose input is a dict of named inputs. {received('model', model)}"
            )
        head = get_head(deserialize_part(head))
        input_kinds = {name_: _input_kind(name_, tensor) for name_, tensor in model.input.items()}
        inputs = {
            name_: keras.Input(tuple(tensor.shape[1:]), dtype=tensor.dtype, name=name_)
            for name_, tensor in model.input.items()
        }
        outputs = model(inputs)
        names = head.output_names
        if isinstance(outputs, dict):
            if sorted(outputs) != sorted(names):
                raise ValueError(f"`head` must name the model's outputs {sorted(outputs)}. Received: head outputs {names}")
            outputs = {n: keras.layers.Identity(name=n)(outputs[n]) for n in names}
        elif len(names) != 1:
            raise ValueError(f"`head` must have one output for a model with one output. Received: head outputs {names}")
        else:
            outputs = keras.layers.Identity(name=names[0])(outputs)
        super().__init__(
            inputs,
            outputs,
            head=head,
            input_kinds=input_kinds,
            optimizer=optimizer,
            learning_rate=learning_rate,
            preprocessor=preprocessor,
            name=name or model.name,
            **kwargs,
        )
        self._model_config = keras.saving.serialize_keras_object(model)

    @classmethod
    def from_v0_1_run(cls, folder):
        """The task of a run folder written by mmkeras 0.1, which stored no head.

        Such a folder holds `model.keras` (a plain functional model), `preprocessor.json` and
        `metrics.json`, whose `"task"` (`"binary"` or `"multiclass"`) is the head the run trained:
        it is named after the model's one output, with one class per class name for a
        multiclass head.

        Args:
            folder: str or path-like, the run folder.

        Returns:
            A `ModelTask` around the loaded model, with the folder's preprocessor.

        Raises:
            ValueError: a file is missing, or `metrics.json` does not say what is needed.

        Example:

        >>> import json, os, tempfile
        >>> from mmkeras.preprocessing import Preprocessor
        >>> folder = tempfile.mkdtemp()
        >>> inputs = {"image": keras.Input((8, 8, 3), name="image")}
        >>> x = keras.layers.GlobalAveragePooling2D()(inputs["image"])
        >>> keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="answer")(x)).save(
        ...     os.path.join(folder, "model.keras"))
        >>> Preprocessor(image_shape=(8, 8, 3), class_names=["a", "b", "c"]).save(
        ...     os.path.join(folder, "preprocessor.json"))
        >>> with open(os.path.join(folder, "metrics.json"), "w") as f:
        ...     json.dump({"task": "multiclass"}, f)
        >>> task = ModelTask.from_v0_1_run(folder)
        >>> task.head, task.class_names()
        (MulticlassHead(name='answer', num_classes=3), ['a', 'b', 'c'])
        """
        import json
        import os

        import mmkeras  # noqa: F401  (registers mmkeras' layers for deserialization)
        from mmkeras.preprocessing import Preprocessor

        try:
            folder = os.fspath(folder)
        except TypeError:
            raise ValueError(f"`folder` must be a str or a path-like object. {received('folder', folder)}") from None
        files = {name: os.path.join(folder, name) for name in ("model.keras", "preprocessor.json", "metrics.json")}
        missing = [name for name, path in files.items() if not os.path.isfile(path)]
        if missing:
            raise ValueError(
                "`folder` must be a run folder written by mmkeras 0.1, holding model.keras, "
                f"preprocessor.json and metrics.json (which records its head). Received: folder={folder!r} "
                f"(missing: {', '.join(missing)})"
            )
        try:
            with open(files["metrics.json"], encoding="utf-8") as f:
                kind = json.load(f).get("task")
        except (ValueError, AttributeError):
            kind = None
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"`folder`'s metrics.json must record the head the run trained as \"task\": \"binary\" or "
                f"\"multiclass\" (as mmkeras 0.1 wrote it). Received: task={kind!r} in {files['metrics.json']!r}"
            )
        preprocessor = Preprocessor.load(files["preprocessor.json"])
        model = keras.saving.load_model(files["model.keras"], safe_mode=True)
        if len(model.output_names) != 1:
            raise ValueError(
                f"`folder`'s model.keras must have the one output of a {kind} head. "
                f"Received: outputs {list(model.output_names)}"
            )
        head = {"kind": kind, "name": model.output_names[0]}
        if kind == "multiclass":
            names = preprocessor.class_names
            if not isinstance(names, list):
                raise ValueError(
                    "`folder`'s preprocessor.json must hold the class names of a multiclass run (their "
                    f"number is the number of classes). Received: class_names={names!r}"
                )
            head["num_classes"] = len(names)
        return cls(model, head=head, preprocessor=preprocessor)

    def get_config(self):
        return {**super().get_config(), "model": self._model_config}
