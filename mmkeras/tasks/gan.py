"""`ConditionalGAN`: a text-conditioned GAN that draws images from descriptions (GAN-CLS).

After Reed et al. (2016), "Generative Adversarial Text to Image Synthesis" (GAN-CLS, their
algorithm 1), and the GAN-based model of source document 004 (its algorithm 4). Three parts:

- a **text encoder** (any registered one: `mmkeras.encoders.TEXT_ENCODERS`) on token ids (or raw
  strings with `raw_text=True`), shared by both networks. GAN-CLS feeds both a fixed, pre-trained
  text embedding; we have none, so the encoder is trained here, by the **discriminator's** loss
  only: telling a matching description from a mismatched one is what teaches it to separate the
  classes. The generator reads the same features but its loss never moves the encoder (it would
  pull the embedding towards whatever fools the discriminator);
- a **generator** (noise `(noise_dim,)` + a projection of the text features -> Dense -> reshape
  to `image_shape / 2**k` -> k transposed convolutions -> sigmoid): images in [0, 1];
- a **discriminator** over (image, text): strided convolutions over the image (its trunk, run
  once for a batch's real images), then a head that reads the text. By default a projection head
  (Miyato and Koyama 2018: the logit is `dense(phi) + <projection(text), phi>` for the image
  features `phi`), which on Fashion-MNIST learned the classes much sooner than GAN-CLS' own head
  (`conditioning="concat"`: the text projection tiled over the feature map and concatenated to
  it, a 1x1 convolution, a Dense logit); docs/gan.md has the numbers.

The task's functional graph (the one `predict`, `.keras` files and the registry tests see) is
the discriminator on its inputs `{"image", "text"}`: its output `"real_score"` is the probability
that the image is real *and* matches the text. The generator is `task.generator` (inputs:
noise and text features); `generate(texts, seed=...)` draws images from raw strings.

Training (`train_step`, two Adam optimizers, one discriminator step then one generator step per
batch) uses the matching-aware loss of GAN-CLS, with `s = sigmoid(logit)`:

    d_loss = -log s(real image, its text)
             - (log(1 - s(real image, mismatched text)) + log(1 - s(G(z, text), text))) / 2
    g_loss = -log s(G(z, text), text)                     (the non-saturating generator loss)

The mismatched texts are the batch's texts rolled by one. When the batch has labels (a
retrieval dataset's class of each pair) a rolled text of the same class as the image is no
mismatch: those pairs are left out of that term (`mismatch_weights`); without labels about one
pair in ten on a 10-class dataset is a same-class "mismatch", a little noise in the loss.
`fit`'s history shows `d_loss`, `g_loss` and `loss` (their sum, for Keras' and mmkeras' reports):
in a two-player game none of them has to fall. Labels are not used otherwise.

Distribution: under `MirroredStrategy` (one worker, several devices) plain `fit` trains: each
replica computes its batch's losses (with noise of its own: the replica id is folded into the
seed), scaled by the number of replicas as Keras' convention wants, and each optimizer sums the
replicas' gradients. `MultiWorkerMirroredStrategy` needs mmkeras' custom loop
(`mmkeras.distribute.fit_custom_loop`), which trains one loss with one optimizer: a GAN is
refused there with an error that says so.

The networks are Keras layers (keras.ops); the training step (`tf.GradientTape`), the seeded
noise of `generate` (`tf.random.stateless_normal`, the draw the export makes) and the export are
TensorFlow only.

Evaluation: `conditional_accuracy` (a classifier trained on real images classifies generated
ones: the share given the class they were conditioned on) and `class_diversity` / `image_diversity`
(mean pairwise L2 distance within a class) are functions of this module; `SampleGrid` is a
callback that renders a grid of samples each epoch (`training_callbacks`, `run_files`).
"""

import math
import os

import keras
import numpy as np

from mmkeras.parts import build_text_encoder, deserialize_part, serialize_part
from mmkeras.preprocessing import as_string_array
from mmkeras.tasks import serving
from mmkeras.tasks.dual_encoder import _replicas
from mmkeras.tasks.task import Task, optional_class_labels, resolve_text_input
from mmkeras.validation import (
    check_bool,
    check_fraction,
    check_image_shape,
    check_int_tuple,
    check_one_of,
    check_positive_int,
    check_seed,
    received,
)

OUTPUT = "real_score"
CONDITIONINGS = ("concat", "projection")
SAMPLE_PROMPT = "a photo of a {}"


def _check_number(name, value, low=0.0, high=math.inf, low_open=True):
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value < high
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + ("" if high == math.inf else f" and < {high}")
        raise ValueError(f"`{name}` must be a number {bound}. {received(name, value)}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# The matching-aware losses (GAN-CLS), on logits.


def mismatch_weights(labels):
    """`1.0` where the text rolled by one (`roll(texts, 1)`) belongs to another class than the
    image, `0.0` where it is of the same class (no mismatch at all); all ones without labels.

    Example:

    >>> keras.ops.convert_to_numpy(mismatch_weights(np.array([0, 0, 1, 2]))).tolist()
    [1.0, 0.0, 1.0, 1.0]
    """
    labels = keras.ops.reshape(labels, (-1,))
    return keras.ops.cast(keras.ops.not_equal(labels, keras.ops.roll(labels, 1, axis=0)), "float32")


def discriminator_loss(real_logits, mismatch_logits, fake_logits, weights=None, label_smoothing=0.0):
    """The GAN-CLS discriminator loss of a batch (a mean over its rows), from logits.

    `-log s_r - (log(1 - s_w) + log(1 - s_f)) / 2`, with `s = sigmoid(logit)` for (real image,
    matching text), (real image, mismatched text) and (generated image, its text). The mismatch
    term is the mean over the rows with weight 1 (`weights`, see `mismatch_weights`; 0 if none).
    With `label_smoothing` the real pairs' target is `1 - label_smoothing` (one-sided smoothing).

    Example:

    >>> zero = np.zeros((2, 1), "float32")
    >>> round(float(discriminator_loss(zero, zero, zero)), 4)  # 2 log 2: the discriminator knows nothing
    1.3863
    """
    ops = keras.ops
    real, mismatch, fake = (ops.reshape(ops.cast(v, "float32"), (-1,)) for v in (real_logits, mismatch_logits, fake_logits))
    target = 1.0 - label_smoothing
    real_term = ops.mean(target * ops.softplus(-real) + (1.0 - target) * ops.softplus(real))
    weights = ops.ones_like(mismatch) if weights is None else ops.reshape(ops.cast(weights, "float32"), (-1,))
    mismatch_term = ops.sum(weights * ops.softplus(mismatch)) / ops.maximum(ops.sum(weights), 1.0)
    return real_term + (mismatch_term + ops.mean(ops.softplus(fake))) / 2.0


def generator_loss(fake_logits):
    """The non-saturating generator loss, `-mean(log sigmoid(fake_logits))`.

    Example:

    >>> round(float(generator_loss(np.zeros((3, 1), "float32"))), 4)
    0.6931
    """
    return keras.ops.mean(keras.ops.softplus(-keras.ops.cast(fake_logits, "float32")))


# ---------------------------------------------------------------------------------------------
# The two networks.


def build_generator(noise_dim, feature_dim, image_shape, filters, condition_dim, momentum=0.9):
    """The generator: `[noise (noise_dim,), text features (feature_dim,)]` -> images in [0, 1].

    The text features are projected to `condition_dim` (LeakyReLU) and concatenated to the
    noise; a Dense layer makes a `(h / 2**k, w / 2**k, filters[0])` map (k = `len(filters)`),
    each further entry of `filters` a stride-2 transposed convolution (batch norm, ReLU), and a
    last one gives the image's channels through a sigmoid (computed in float32).

    Example:

    >>> build_generator(8, 12, (28, 28, 1), (16, 8), 4).output_shape
    (None, 28, 28, 1)
    """
    layers = keras.layers
    height, width, channels = image_shape
    scale = 2 ** len(filters)
    noise = keras.Input((noise_dim,), name="noise")
    features = keras.Input((feature_dim,), name="text_features")
    condition = layers.Dense(condition_dim, name="generator_text_projection")(features)
    condition = layers.LeakyReLU(0.2, name="generator_text_activation")(condition)
    x = layers.Concatenate(name="generator_concat")([noise, condition])
    x = layers.Dense((height // scale) * (width // scale) * filters[0], use_bias=False, name="generator_dense")(x)
    x = layers.BatchNormalization(momentum=momentum, name="generator_dense_bn")(x)
    x = layers.ReLU(name="generator_dense_relu")(x)
    x = layers.Reshape((height // scale, width // scale, filters[0]), name="generator_reshape")(x)
    for i, width_i in enumerate(filters[1:], start=1):
        x = layers.Conv2DTranspose(width_i, 4, strides=2, padding="same", use_bias=False, name=f"generator_up{i}_deconv")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"generator_up{i}_bn")(x)
        x = layers.ReLU(name=f"generator_up{i}_relu")(x)
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", name="generator_output_deconv")(x)
    image = layers.Activation("sigmoid", dtype="float32", name="generated_image")(x)
    return keras.Model([noise, features], image, name="generator")


def build_discriminator(image_shape, feature_dim, filters, condition_dim, conditioning="concat", dropout=0.0,
                        spectral_norm=False):
    """The discriminator, as `(trunk, head)`: `trunk` images -> a feature map (stride-2
    convolutions, LeakyReLU 0.2); `head` `[feature map, text features (feature_dim,)]` -> one
    logit per pair. A batch's real images are scored against two texts (their own, a mismatched
    one): split so, the trunk runs once for both.

    `conditioning="concat"` (GAN-CLS): the text features projected to `condition_dim`, tiled over
    the map and concatenated to it, a 1x1 convolution, flatten, dropout, a Dense logit.
    `"projection"` (Miyato and Koyama 2018): the flattened map through Dense(`4 * condition_dim`)
    is `phi`; the logit is `dense(phi) + <projection(text), phi>`. `spectral_norm` wraps every
    convolution and Dense layer in `keras.layers.SpectralNormalization` (Miyato et al. 2018).

    Example:

    >>> trunk, head = build_discriminator((28, 28, 1), 12, (8, 16), 4)
    >>> trunk.output_shape, head.output_shape
    ((None, 7, 7, 16), (None, 1))
    """
    layers = keras.layers

    def sn(layer):
        return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if spectral_norm else layer

    image = keras.Input(image_shape, name="image")
    x = image
    for i, width_i in enumerate(filters, start=1):
        x = sn(layers.Conv2D(width_i, 4, strides=2, padding="same", name=f"discriminator_down{i}_conv"))(x)
        x = layers.LeakyReLU(0.2, name=f"discriminator_down{i}_relu")(x)
    trunk = keras.Model(image, x, name="discriminator_trunk")

    feature_map = keras.Input(x.shape[1:], name="feature_map")
    features = keras.Input((feature_dim,), name="text_features")
    height, width, channels = x.shape[1:]
    if conditioning == "concat":
        condition = sn(layers.Dense(condition_dim, name="discriminator_text_projection"))(features)
        condition = layers.LeakyReLU(0.2, name="discriminator_text_activation")(condition)
        condition = layers.RepeatVector(height * width, name="discriminator_text_tile")(condition)
        condition = layers.Reshape((height, width, condition_dim), name="discriminator_text_map")(condition)
        y = layers.Concatenate(name="discriminator_concat")([feature_map, condition])
        y = sn(layers.Conv2D(channels, 1, name="discriminator_joint_conv"))(y)
        y = layers.LeakyReLU(0.2, name="discriminator_joint_relu")(y)
        y = layers.Flatten(name="discriminator_flatten")(y)
        if dropout:
            y = layers.Dropout(dropout, name="discriminator_dropout")(y)
        logit = sn(layers.Dense(1, name="discriminator_logit"))(y)
    else:
        y = layers.Flatten(name="discriminator_flatten")(feature_map)
        if dropout:
            y = layers.Dropout(dropout, name="discriminator_dropout")(y)
        phi = sn(layers.Dense(4 * condition_dim, name="discriminator_dense"))(y)
        phi = layers.LeakyReLU(0.2, name="discriminator_dense_relu")(phi)
        unconditional = sn(layers.Dense(1, name="discriminator_unconditional_logit"))(phi)
        condition = sn(layers.Dense(4 * condition_dim, name="discriminator_text_projection"))(features)
        match = layers.Dot(axes=1, name="discriminator_text_match")([condition, phi])
        logit = layers.Add(name="discriminator_logit")([unconditional, match])
    head = keras.Model([feature_map, features], logit, name="discriminator_head")
    return trunk, head


# ---------------------------------------------------------------------------------------------
# The task.


@keras.saving.register_keras_serializable(package="mmkeras")
class ConditionalGAN(Task):
    """A text-conditioned GAN (GAN-CLS): draws images from descriptions; see the module doc.

    Inputs are a dict of `"image"` `(batch, *image_shape)` floats in [0, 1] and `"text"` token ids
    `(batch, sequence_length)` (or raw strings with `raw_text=True`); the output `"real_score"` is
    the discriminator's probability that each image is real and matches its text. `compile()`
    takes no loss (the task trains with its own `train_step`) and makes two Adam optimizers;
    `generate(texts, seed=...)` draws images. Labels given to `fit` (each pair's class) only
    keep same-class texts out of the mismatched pairs.

    Args:
        text_encoder: name in `mmkeras.encoders.TEXT_ENCODERS`, a dict `{"kind": name, **args}`
            or a `keras.Model` giving one vector per text. Defaults to `"conv"`.
        noise_dim: int, the size of the generator's noise. Defaults to `64`.
        condition_dim: int, the width of each network's projection of the text features.
            Defaults to `64`.
        generator_filters: tuple of ints: the channels of the first feature map (at
            `image_shape / 2**len(generator_filters)`), then of each transposed convolution
            before the last (which gives the image's channels). Defaults to `(128, 64)`.
        discriminator_filters: tuple of ints, one stride-2 convolution each. Defaults to
            `(64, 128)`.
        conditioning: how the discriminator reads the text: `"concat"` (GAN-CLS: tiled over its
            feature map) or `"projection"` (an inner product with its features, Miyato and
            Koyama 2018: on Fashion-MNIST it learns the classes much sooner, see docs/gan.md);
            see `build_discriminator`. Defaults to `"projection"`.
        dropout: float in [0, 1), dropout in the discriminator's head. Defaults to `0.0`.
        spectral_norm: bool, spectral normalization on the discriminator's layers. Defaults to
            `False`.
        label_smoothing: float in [0, 1), one-sided: real pairs' target is `1 - label_smoothing`.
            Defaults to `0.0`.
        image_shape: `(height, width, channels)`; height and width divisible by
            `2**len(generator_filters)`. Defaults to `(28, 28, 1)`.
        sequence_length, vocab_size, raw_text, text_vectorizer, preprocessor: as for
            `mmkeras.tasks.FusionClassifier`.
        learning_rate: float, the generator's Adam learning rate. Defaults to `2e-4`.
        discriminator_learning_rate: float or None, the discriminator's (None: `learning_rate`).
        beta_1: float in [0, 1), both optimizers' Adam `beta_1`. Defaults to `0.5` (DCGAN's).
        seed: int or None, seeds the noise drawn in training. Defaults to `None`.
        name: str. Defaults to `"conditional_gan"`.

    Example:

    >>> import numpy as np
    >>> model = ConditionalGAN(text_encoder={"kind": "conv", "embedding_dim": 8, "filters": 8},
    ...                        noise_dim=8, condition_dim=8, generator_filters=(16, 8),
    ...                        discriminator_filters=(8, 16), image_shape=(8, 8, 1),
    ...                        sequence_length=4, vocab_size=20)
    >>> model.compile()
    >>> batch = {"image": np.random.rand(8, 8, 8, 1).astype("float32"),
    ...          "text": np.random.randint(1, 20, (8, 4)).astype("int32")}
    >>> history = model.fit(batch, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['d_loss', 'g_loss', 'loss']
    >>> model.generate(batch["text"], seed=0).shape
    (8, 8, 8, 1)
    """

    trains_on = ("retrieval",)
    loss_must_fall = False  # a two-player game: tests/helpers.run_fit_test checks that the weights move

    def __init__(
        self,
        text_encoder="conv",
        *,
        noise_dim=64,
        condition_dim=64,
        generator_filters=(128, 64),
        discriminator_filters=(64, 128),
        conditioning="projection",
        dropout=0.0,
        spectral_norm=False,
        label_smoothing=0.0,
        image_shape=(28, 28, 1),
        sequence_length=16,
        vocab_size=1000,
        raw_text=False,
        text_vectorizer=None,
        learning_rate=2e-4,
        discriminator_learning_rate=None,
        beta_1=0.5,
        seed=None,
        preprocessor=None,
        name="conditional_gan",
        **kwargs,
    ):
        # === Arguments ===
        image_shape = check_image_shape("image_shape", image_shape)
        check_positive_int("noise_dim", noise_dim)
        check_positive_int("condition_dim", condition_dim)
        generator_filters = check_int_tuple("generator_filters", generator_filters, allow_empty=False)
        discriminator_filters = check_int_tuple("discriminator_filters", discriminator_filters, allow_empty=False)
        scale = 2 ** len(generator_filters)
        if image_shape[0] % scale or image_shape[1] % scale:
            raise ValueError(
                f"`image_shape`'s height and width must be divisible by 2**len(generator_filters) = {scale} "
                f"(the generator doubles its first feature map {len(generator_filters)} times). "
                f"Received: image_shape={image_shape}, generator_filters={generator_filters}"
            )
        check_one_of("conditioning", conditioning, CONDITIONINGS)
        dropout = check_fraction("dropout", dropout)
        check_bool("spectral_norm", spectral_norm)
        label_smoothing = check_fraction("label_smoothing", label_smoothing)
        learning_rate = _check_number("learning_rate", learning_rate)
        if discriminator_learning_rate is not None:
            discriminator_learning_rate = _check_number("discriminator_learning_rate", discriminator_learning_rate)
        beta_1 = _check_number("beta_1", beta_1, 0.0, 1.0, low_open=False)
        if seed is not None:
            check_seed("seed", seed)
        if text_encoder is None:
            raise ValueError(
                f"A conditional GAN needs a text encoder: `text_encoder` must be set. {received('text_encoder', text_encoder)}"
            )
        preprocessor, raw_text, sequence_length, vocab_size = resolve_text_input(
            preprocessor, text_vectorizer, raw_text, image_shape, sequence_length, vocab_size
        )

        # === Layers ===
        text_encoder = deserialize_part(text_encoder)
        text_model = build_text_encoder(text_encoder, sequence_length, vocab_size)
        if len(text_model.output_shape) != 2:
            raise ValueError(
                "`text_encoder` of a conditional GAN must give one vector per text (e.g. 'conv', 'rnn'). "
                f"Received: text_encoder={serialize_part(text_encoder)!r} with output shape {text_model.output_shape}"
            )
        feature_dim = text_model.output_shape[-1]
        generator = build_generator(noise_dim, feature_dim, image_shape, generator_filters, condition_dim)
        trunk, head = build_discriminator(image_shape, feature_dim, discriminator_filters, condition_dim,
                                          conditioning, dropout, spectral_norm)

        # === Functional model: the discriminator on (image, text) ===
        image_input = keras.Input(image_shape, name="image")
        if raw_text:
            text_input = keras.Input((), dtype="string", name="text")
            token_ids = preprocessor.vectorizer(text_input)
        else:
            text_input = keras.Input((sequence_length,), dtype="int32", name="text")
            token_ids = text_input
        logit = head([trunk(image_input), text_model(token_ids)])
        score = keras.layers.Activation("sigmoid", dtype="float32", name=OUTPUT)(logit)
        super().__init__(
            {"image": image_input, "text": text_input},
            {OUTPUT: score},
            input_kinds={"image": "image", "text": "text" if raw_text else "token_ids"},
            preprocessor=preprocessor,
            name=name,
            **kwargs,
        )
        self.generator = generator  # tracked: its weights are the model's too (saved, counted)
        # The graph's own parts, named for the steps; not tracked twice.
        object.__setattr__(self, "text_model", text_model)
        object.__setattr__(self, "discriminator_trunk", trunk)
        object.__setattr__(self, "discriminator_head", head)
        self.noise_seeds = keras.random.SeedGenerator(seed, name="noise_seeds")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.discriminator_optimizer = None
        self._sample_callback = None

        # === Config === (kept as plain dicts and lists: not wrapped by Keras' attribute tracking)
        object.__setattr__(self, "_config", {
            "text_encoder": serialize_part(text_encoder),
            "noise_dim": noise_dim,
            "condition_dim": condition_dim,
            "generator_filters": list(generator_filters),
            "discriminator_filters": list(discriminator_filters),
            "conditioning": conditioning,
            "dropout": dropout,
            "spectral_norm": spectral_norm,
            "label_smoothing": label_smoothing,
            "image_shape": list(image_shape),
            "sequence_length": sequence_length,
            "vocab_size": vocab_size,
            "raw_text": raw_text,
            "learning_rate": learning_rate,
            "discriminator_learning_rate": discriminator_learning_rate,
            "beta_1": beta_1,
            "seed": seed,
        })

    @property
    def noise_dim(self):
        return self._config["noise_dim"]

    @property
    def image_shape(self):
        return tuple(self._config["image_shape"])

    # Training.

    def _split_variables(self):
        """`(discriminator's, generator's)` trainable variables; the text encoder is the
        discriminator's (see the module doc)."""
        discriminator = self.discriminator_trunk.trainable_variables + self.discriminator_head.trainable_variables
        return (discriminator + self.text_model.trainable_variables,
                self.generator.trainable_variables)

    def _adam(self, learning_rate):
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=self._config["beta_1"])

    def training_optimizer(self, learning_rate, total_steps, warmup):
        """What `mmkeras.train` compiles with: the task's Adam (`beta_1`) at a constant
        `learning_rate` for the generator (the discriminator gets a copy), as GANs usually train
        and as docs/gan.md measured; `total_steps` and `warmup` are not used."""
        return self._adam(learning_rate)

    def compile_defaults(self):
        rate = self._config["discriminator_learning_rate"] or self._config["learning_rate"]
        return {"optimizer": self._adam(self._config["learning_rate"]), "discriminator_optimizer": self._adam(rate),
                "loss": None, "metrics": None}

    def compile(self, optimizer="auto", loss="auto", metrics="auto", *, discriminator_optimizer="auto", **kwargs):
        """`keras.Model.compile` with the task's two optimizers; the loss is the task's own.

        Args:
            optimizer: `"auto"` (Adam at `learning_rate`, `beta_1`) or any Keras optimizer: the
                generator's.
            loss: `"auto"` or None (the task trains with its own matching-aware loss); another
                loss is refused.
            metrics: `"auto"` or None.
            discriminator_optimizer: `"auto"` or any Keras optimizer: the discriminator's (and
                the text encoder's). `"auto"` is the task's Adam when `optimizer` is `"auto"`,
                else a fresh copy of `optimizer` (its class and config: e.g. the learning-rate
                schedule `mmkeras.train` gives).
        """
        if loss not in ("auto", None):
            raise ValueError(
                "`loss` of a ConditionalGAN is its own matching-aware GAN loss (see mmkeras.tasks.gan); "
                f"leave it out of compile(). Received: loss={loss!r}"
            )
        if metrics not in ("auto", None):
            raise ValueError(
                f"`metrics` of a ConditionalGAN are its d_loss and g_loss; leave them out of compile(). {received('metrics', metrics)}"
            )
        defaults = self.compile_defaults()
        if discriminator_optimizer == "auto":
            if optimizer == "auto":
                discriminator_optimizer = defaults["discriminator_optimizer"]
            else:
                given = keras.optimizers.get(optimizer)
                discriminator_optimizer = type(given).from_config(given.get_config())
        discriminator_optimizer = keras.optimizers.get(discriminator_optimizer)
        super().compile(optimizer=optimizer, loss=None, metrics=None, **kwargs)
        scaled = isinstance(discriminator_optimizer, keras.optimizers.LossScaleOptimizer)
        if self.dtype_policy.name == "mixed_float16" and not scaled:  # as Keras wraps `optimizer`
            discriminator_optimizer = keras.optimizers.LossScaleOptimizer(discriminator_optimizer)
        self.discriminator_optimizer = discriminator_optimizer
        # Built now, each on its own variables, so a saved file's optimizer state loads back whole.
        discriminator_variables, generator_variables = self._split_variables()
        self.optimizer.build(generator_variables)
        self.discriminator_optimizer.build(discriminator_variables)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None and self.discriminator_optimizer is not None:
            optimizer = self.discriminator_optimizer
            inner = getattr(optimizer, "inner_optimizer", optimizer)  # compile wraps it again under mixed_float16
            config["discriminator_optimizer"] = keras.saving.serialize_keras_object(inner)
        return config

    def compile_from_config(self, config):
        """Recompile a loaded task with both of its optimizers, as it was saved."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Refused: a GAN trains two networks with two losses in `train_step`, not one loss."""
        raise ValueError(
            "A ConditionalGAN trains two networks with two optimizers in its own `train_step`; a loop "
            "that trains one loss with one optimizer (mmkeras' MultiWorkerMirroredStrategy loop) cannot "
            "train it. Train with `model.fit` on one worker (one device or MirroredStrategy). "
            f"Received: a call to compute_loss for model {self.name!r}"
        )

    def _batch(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if not isinstance(x, dict) or set(x) != set(self.input_kinds):
            raise ValueError(f"A ConditionalGAN trains on dicts with the keys {sorted(self.input_kinds)}. Received: {x!r}")
        return x["image"], x["text"], (None if y is None else mismatch_weights(y))

    def discriminate(self, images, features, training=False):
        """The discriminator's logits `(batch, 1)` for images and text features (the text
        encoder's output for their texts)."""
        images, features = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(features)
        return self.discriminator_head([self.discriminator_trunk(images, training=training), features], training=training)

    def _pair_losses(self, images, texts, weights, training):
        """`(d_loss, text features)` of a batch: real pairs, mismatched pairs and generated images."""
        ops = keras.ops
        features = self.text_model(self._token_ids(texts), training=training)
        batch = ops.shape(images)[0]
        fake = ops.stop_gradient(self.generator([self._draw_noise(batch), ops.stop_gradient(features)], training=training))
        maps = self.discriminator_trunk(ops.concatenate([images, ops.cast(fake, images.dtype)], axis=0), training=training)
        real_maps, fake_maps = maps[:batch], maps[batch:]
        head = self.discriminator_head
        real_logits = head([real_maps, features], training=training)
        mismatch_logits = head([real_maps, ops.roll(features, 1, axis=0)], training=training)
        fake_logits = head([fake_maps, features], training=training)
        d_loss = discriminator_loss(real_logits, mismatch_logits, fake_logits, weights, self._config["label_smoothing"])
        return d_loss, features

    def _token_ids(self, texts):
        return self.preprocessor.vectorizer(texts) if self._config["raw_text"] else texts

    def _draw_noise(self, batch):
        """Standard normal noise `(batch, noise_dim)` from the task's seed generator. Under a
        strategy every replica holds the same generator state: its replica id is folded into the
        seed, or all replicas would draw the same noise for their shares of the batch."""
        if _replicas() == 1:
            return keras.random.normal((batch, self.noise_dim), seed=self.noise_seeds)
        import tensorflow as tf

        seed = tf.cast(self.noise_seeds.next(), tf.int64)
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        return tf.random.stateless_normal((batch, self.noise_dim), seed=seed + tf.stack([tf.zeros([], tf.int64), replica + 1]))

    @staticmethod
    def _scaled(optimizer, loss):
        """The loss whose gradients the optimizer applies (computed inside the tape): divided by the
        number of replicas, whose gradients the optimizer sums (Keras' convention), and scaled
        for a `LossScaleOptimizer` (mixed_float16)."""
        return optimizer.scale_loss(loss / float(_replicas()))

    def train_step(self, data):
        """One discriminator step, then one generator step (fresh noise), on a batch of pairs."""
        import tensorflow as tf

        images, texts, weights = self._batch(data)
        discriminator_variables, generator_variables = self._split_variables()
        with tf.GradientTape() as tape:
            d_loss, _ = self._pair_losses(images, texts, weights, training=True)
            scaled = self._scaled(self.discriminator_optimizer, d_loss)
        gradients = tape.gradient(scaled, discriminator_variables)
        self.discriminator_optimizer.apply_gradients(zip(gradients, discriminator_variables))
        with tf.GradientTape() as tape:
            features = keras.ops.stop_gradient(self.text_model(self._token_ids(texts), training=True))
            fake = self.generator([self._draw_noise(keras.ops.shape(images)[0]), features], training=True)
            g_loss = generator_loss(self.discriminate(fake, features, training=True))
            scaled = self._scaled(self.optimizer, g_loss)
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, generator_variables), generator_variables))
        return self._log(d_loss, g_loss)

    def test_step(self, data):
        """The discriminator and generator losses of a batch, with no update."""
        images, texts, weights = self._batch(data)
        d_loss, features = self._pair_losses(images, texts, weights, training=False)
        fake = self.generator([self._draw_noise(keras.ops.shape(images)[0]), features], training=False)
        return self._log(d_loss, generator_loss(self.discriminate(fake, features, training=False)))

    def _log(self, d_loss, g_loss):
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.total_loss_tracker.update_state(d_loss + g_loss)
        return {t.name: t.result() for t in (self.total_loss_tracker, self.d_loss_tracker, self.g_loss_tracker)}

    def check_labels(self, labels):
        """Labels are optional: a class index per pair (keeps same-class texts out of the mismatches)."""
        return optional_class_labels(labels, "a conditional GAN", "used to skip same-class mismatches, not as targets")

    def extra_metrics(self, examples, batch_size=256, limit=2000):
        """The test metrics `mmkeras.train` and `evaluate` add: the mean within-class diversity
        (`image_diversity`) of images drawn for the first `limit` test texts (seed 0), beside that
        of their real images (one class when the examples have no labels)."""
        if examples.texts is None or examples.images is None or not len(examples):
            return {}
        n = min(len(examples), limit)
        labels = np.zeros(n, "int64") if examples.labels is None else np.asarray(examples.labels[:n])
        real = np.asarray(examples.example_images(np.arange(n)))
        real = real.astype("float32") / 255.0 if real.dtype == np.uint8 else real.astype("float32")
        generated = self.generate(list(examples.texts[:n]), seed=0, batch_size=batch_size)
        return {
            "generated_diversity": float(np.mean(list(image_diversity(generated, labels).values()))),
            "real_diversity": float(np.mean(list(image_diversity(real, labels).values()))),
        }

    # Generation.

    def text_inputs(self, texts):
        """Raw strings (or int token ids `(n, sequence_length)`) -> the text input the model takes."""
        if isinstance(texts, np.ndarray) and texts.dtype.kind in "iu" and self.input_kinds["text"] == "token_ids":
            self.check_inputs({"text": texts})
            return texts.astype("int32")
        texts = as_string_array(texts, "texts")
        if self.input_kinds["text"] == "text" or not len(texts):
            return texts if len(texts) else np.zeros((0, self._config["sequence_length"]), "int32")
        return self.preprocessor.texts_to_ids(texts).numpy()

    def noise_for(self, n, seed=None):
        """The generator's noise for `n` samples: standard normal `(n, noise_dim)` float32 drawn
        from the stateless generator with seed `(seed, 0)`, as the exported `serving_default`
        draws it (a random seed when None)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"`n` must be an int >= 0. {received('n', n)}")
        import tensorflow as tf  # the draw the exported graph makes (Keras' own folds seeds into int32)

        seed = int(np.random.default_rng().integers(2**31)) if seed is None else seed
        check_seed("seed", seed)
        return tf.random.stateless_normal((int(n), self.noise_dim), seed=tf.constant([int(seed), 0], tf.int64)).numpy()

    def generate(self, texts, seed=None, noise=None, batch_size=256):
        """Images drawn for raw texts: float32 `(n, *image_shape)` in [0, 1] (numpy).

        Args:
            texts: a sequence of raw strings (or int token ids `(n, sequence_length)`).
            seed: int or None: the same seed gives the same images (`noise_for(n, seed)`).
                None draws a random seed. Give `seed` or `noise`, not both.
            noise: float array `(n, noise_dim)`, the generator's noise itself.
            batch_size: int. Defaults to `256`.

        Example:

        >>> model = ConditionalGAN(text_encoder={"kind": "conv", "filters": 4}, noise_dim=4,
        ...                        condition_dim=4, generator_filters=(8, 4), discriminator_filters=(4,),
        ...                        image_shape=(8, 8, 1), sequence_length=4, vocab_size=20)
        >>> texts = np.ones((3, 4), "int32")
        >>> a, b = model.generate(texts, seed=1), model.generate(texts, seed=1)
        >>> a.shape, bool((a == b).all()), bool(0 <= a.min() and a.max() <= 1)
        ((3, 8, 8, 1), True, True)
        """
        check_positive_int("batch_size", batch_size)
        inputs = self.text_inputs(texts)
        n = len(inputs)
        if noise is not None and seed is not None:
            raise ValueError(f"Give `seed` or `noise`, not both. Received: seed={seed!r} and noise of shape {np.shape(noise)}")
        noise = self.noise_for(n, seed) if noise is None else np.asarray(noise)
        if noise.dtype.kind != "f" or noise.shape != (n, self.noise_dim) or not np.all(np.isfinite(noise)):
            raise ValueError(
                f"`noise` must be finite floats of shape ({n}, {self.noise_dim}): one row of noise_dim per text. "
                f"Received: noise of shape {noise.shape} and dtype {noise.dtype}"
            )
        noise = noise.astype("float32")
        images = [np.zeros((0, *self.image_shape), "float32")]
        for start in range(0, n, batch_size):  # direct calls: no predict function traced per size
            features = self.text_model(self._token_ids(inputs[start : start + batch_size]), training=False)
            batch = self.generator([keras.ops.convert_to_tensor(noise[start : start + batch_size]), features], training=False)
            images.append(np.asarray(keras.ops.convert_to_numpy(batch), "float32"))
        return np.concatenate(images)

    # Answers.

    def postprocess(self, outputs, top_k=3):
        """Outputs -> answers: `{"real_score"}` -> one `{"answer": "real" | "fake", "probability",
        "top", "real_score"}` per pair (is the image real and does it match its text?);
        `{"image"}` (generated, floats in [0, 1]) -> one `{"image": uint8 array}` per sample."""
        if "image" in outputs:
            images = np.asarray(outputs["image"], "float32")
            return [{"image": np.round(np.clip(image, 0, 1) * 255).astype("uint8")} for image in images]
        answers = []
        for p in np.asarray(outputs[OUTPUT], "float32").reshape(-1):
            top = sorted([("real", float(p)), ("fake", float(1 - p))], key=lambda t: -t[1])
            answers.append({"answer": top[0][0], "probability": top[0][1], "top": top[:top_k], OUTPUT: float(p)})
        return answers

    def answer(self, image=None, text=None, *, top_k=3, seed=None, batch_size=64):
        """With `text` only: one generated image per text (`{"image": uint8 (h, w, c)}`, drawn
        with `seed`); with `image` and `text`: the discriminator's verdict on each pair."""
        if text is None:
            raise ValueError(f"`text` must be the descriptions to draw (or to score with `image`). {received('text', text)}")
        if image is None:
            return self.postprocess({"image": self.generate(text, seed=seed, batch_size=batch_size)})
        inputs = self.prepare_inputs(image=image, text=text)
        return self.postprocess(self.predict(inputs, batch_size=batch_size, verbose=0), top_k=top_k)

    # Sample grids during training.

    def sample_texts(self):
        """The texts of the sample grid: one prompt per class name, or None without class names
        or a vocabulary (nothing to condition on)."""
        names = self.preprocessor.class_names
        untokenizable = self.input_kinds["text"] == "token_ids" and self.preprocessor.vocabulary is None
        if not isinstance(names, list) or not names or untokenizable:
            return None
        return [SAMPLE_PROMPT.format(name) for name in names]

    def training_callbacks(self):
        """A `SampleGrid` (one row per class, fixed noise) when the task knows its class names."""
        texts = self.sample_texts()
        if texts is None:
            return []
        object.__setattr__(self, "_sample_callback", SampleGrid(texts))
        return [self._sample_callback]

    def run_files(self):
        """The PNG sample grids of the last `training_callbacks()`: `{"samples/epoch_001.png": bytes}`."""
        callback = self._sample_callback
        return {} if callback is None else {f"samples/{name}": data for name, data in callback.images.items()}

    # Serving.

    def serving_endpoints(self):
        """`serving_default` (texts + an int64 seed -> images), `generate_from_noise` (texts +
        noise -> images) and `discriminate` (encoded images + texts -> real_score)."""
        import tensorflow as tf

        shape, dim, text_kind = self.image_shape, self.noise_dim, self.input_kinds["text"]

        def features_of(texts):
            tokens = texts if text_kind == "text" else self.preprocessor.texts_to_ids(texts)
            return self.text_model(tokens, training=False)

        def draw(texts, noise):
            def run(features):
                images = self.generator([features["noise"], features_of(features["text"])], training=False)
                pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)
                return {"image": images, "png": tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string)}
            empty = lambda: {"image": tf.zeros([0, *shape], tf.float32), "png": tf.zeros([0], tf.string)}  # noqa: E731
            return serving.empty_or(serving.check_same_batch({"text": texts, "noise": noise}), run, empty)

        def seeded(request):
            texts = serving.check_tensor(request["text"], "text", (), "a batch of texts (tf.string)")
            seed = tf.convert_to_tensor(request["seed"])
            seed = serving.checked(seed, tf.equal(tf.rank(seed), 0), "`seed` must be one int64 scalar; received shape",
                                   tf.shape(seed))
            pair = tf.concat([tf.reshape(seed, [-1]), tf.zeros([1], seed.dtype)], 0)  # (seed, 0), as `noise_for`
            noise = tf.random.stateless_normal([tf.shape(texts)[0], dim], seed=pair)
            return draw(texts, noise)

        def from_noise(request):
            texts = serving.check_tensor(request["text"], "text", (), "a batch of texts (tf.string)")
            noise = serving.check_tensor(request["noise"], "noise", (dim,), "standard normal noise (float32)")
            noise = serving.checked(noise, tf.reduce_all(tf.math.is_finite(noise)), "`noise` must be finite")
            return draw(texts, noise)

        def discriminate(request):
            features = serving.raw_request(request, {"image": "image", "text": "text"})  # both strings

            def run(features):
                pixels = self.preprocessor.decode_images(features["image"], "image")
                texts = features["text"] if text_kind == "text" else self.preprocessor.texts_to_ids(features["text"])
                return {OUTPUT: self({"image": pixels, "text": texts}, training=False)[OUTPUT]}

            return serving.empty_or(features, run, lambda: {OUTPUT: tf.zeros([0, 1], tf.float32)})

        text = tf.TensorSpec(None, tf.string, name="text")
        return {
            serving.SERVING_SIGNATURE: (seeded, [{"text": text, "seed": tf.TensorSpec(None, tf.int64, name="seed")}]),
            "generate_from_noise": (from_noise, [{"text": text, "noise": tf.TensorSpec(None, tf.float32, name="noise")}]),
            "discriminate": (discriminate, [{"image": tf.TensorSpec(None, tf.string, name="image"), "text": text}]),
        }

    def serving_description(self):
        text = {"dtype": "string", "shape": [None], "content": "raw text"}
        images = {
            "image": {"dtype": "float32", "shape": [None, *self.image_shape], "content": "generated images in [0, 1]"},
            "png": {"dtype": "string", "shape": [None], "content": "the generated images as PNG bytes"},
        }
        return {
            serving.SERVING_SIGNATURE: {
                "inputs": {"text": text,
                           "seed": {"dtype": "int64", "shape": [], "content": "the noise seed: same seed, same images"}},
                "outputs": images,
            },
            "generate_from_noise": {
                "inputs": {"text": text,
                           "noise": {"dtype": "float32", "shape": [None, self.noise_dim], "content": "standard normal noise"}},
                "outputs": images,
            },
            "discriminate": {
                "inputs": {"image": {"dtype": "string", "shape": [None], "content": "encoded image bytes"}, "text": text},
                "outputs": {OUTPUT: {"dtype": "float32", "shape": [None, 1],
                                     "content": "probability the image is real and matches the text"}},
            },
        }

    # Config.

    def get_config(self):
        return {**super().get_config(), **self._config}


# ---------------------------------------------------------------------------------------------
# Sample grids.


def image_grid(images, rows, padding=1):
    """Images `(rows * columns, h, w, c)` in [0, 1] -> one uint8 grid `(H, W, c)`, row by row,
    with `padding` white pixels between them.

    Example:

    >>> image_grid(np.zeros((6, 4, 4, 1)), rows=2).shape  # 2 rows of 3
    (9, 14, 1)
    """
    images = np.asarray(images, "float32")
    n, height, width, channels = images.shape
    columns = n // rows
    grid = np.ones((rows * (height + padding) - padding, columns * (width + padding) - padding, channels), "float32")
    for i in range(rows * columns):
        top, left = (step * (size + padding) for step, size in zip(divmod(i, columns), (height, width)))
        grid[top : top + height, left : left + width] = images[i]
    return np.round(np.clip(grid, 0, 1) * 255).astype("uint8")


class SampleGrid(keras.callbacks.Callback):
    """Renders a grid of generated samples at the end of every epoch, as PNG bytes.

    Row `i` holds `columns` samples of `texts[i]`, from the same noise every epoch (drawn once
    with `seed`), so the grids show how the generator learns. The PNGs are kept in `images`
    (`{"epoch_001.png": bytes}`; `ConditionalGAN.run_files` hands them to `mmkeras.train`,
    which writes them into the run folder); with `folder` each is also written there.

    Args:
        texts: list of str, one row each.
        columns: int, samples per row. Defaults to `8`.
        seed: int, the noise seed. Defaults to `0`.
        folder: str or None, where to write `epoch_NNN.png` files. Defaults to `None`.

    Example:

    >>> import tempfile
    >>> model = ConditionalGAN(text_encoder={"kind": "conv", "filters": 4}, noise_dim=4,
    ...                        condition_dim=4, generator_filters=(8, 4), discriminator_filters=(4,),
    ...                        image_shape=(8, 8, 1), sequence_length=4, vocab_size=20)
    >>> grid = SampleGrid(np.ones((2, 4), "int32"), columns=3, folder=tempfile.mkdtemp())
    >>> grid.set_model(model)
    >>> grid.on_epoch_end(0)
    >>> sorted(grid.images), os.listdir(grid.folder)
    (['epoch_001.png'], ['epoch_001.png'])
    """

    def __init__(self, texts, columns=8, seed=0, folder=None):
        super().__init__()
        if isinstance(texts, str) or not hasattr(texts, "__len__") or not len(texts):
            raise ValueError(f"`texts` must be a non-empty list of texts, one row each. {received('texts', texts)}")
        self.texts, self.columns = texts, check_positive_int("columns", columns)
        check_seed("seed", seed)
        self.seed = seed
        if folder is not None and not isinstance(folder, (str, os.PathLike)):
            raise ValueError(f"`folder` must be a folder path or None. {received('folder', folder)}")
        self.folder = None if folder is None else os.fspath(folder)
        self.images = {}

    def render(self):
        """The current grid as PNG bytes."""
        import tensorflow as tf

        if isinstance(self.texts, np.ndarray) and self.texts.dtype.kind in "iu":  # token ids
            texts = np.repeat(self.texts, self.columns, axis=0)
        else:
            texts = [text for text in self.texts for _ in range(self.columns)]
        noise = np.tile(self.model.noise_for(self.columns, self.seed), (len(self.texts), 1))
        grid = image_grid(self.model.generate(texts, noise=noise), rows=len(self.texts))
        return tf.io.encode_png(grid).numpy()

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch_{epoch + 1:03d}.png"
        self.images[name] = self.render()
        if self.folder is not None:
            from mmkeras.atomic import atomic_file

            os.makedirs(self.folder, exist_ok=True)
            with atomic_file(os.path.join(self.folder, name)) as tmp:
                with open(tmp, "wb") as f:
                    f.write(self.images[name])


# ---------------------------------------------------------------------------------------------
# Evaluation.


def _check_classifier(classifier):
    if not callable(getattr(classifier, "predict", None)):
        raise ValueError(
            f"`classifier` must be a Keras model that classifies images (with `predict`). {received('classifier', classifier)}"
        )


def _labels(labels, n):
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"`labels` must be one int class index per text ({n}). "
            f"Received: labels of shape {labels.shape} and dtype {labels.dtype}"
        )
    return labels


def conditional_accuracy(generator, classifier, texts, labels, seed=0, batch_size=256):
    """The share of images drawn for `texts` that `classifier` puts in the class they were
    conditioned on (`labels`): how well the generator follows its text.

    Args:
        generator: a `ConditionalGAN`.
        classifier: a Keras model, images `(n, *image_shape)` in [0, 1] -> class scores.
        texts: raw strings (or token ids), one image each.
        labels: int class indices, one per text.
        seed: int, the noise seed. Defaults to `0`.
        batch_size: int. Defaults to `256`.

    Example:

    >>> model = ConditionalGAN(text_encoder={"kind": "conv", "filters": 4}, noise_dim=4,
    ...                        condition_dim=4, generator_filters=(8, 4), discriminator_filters=(4,),
    ...                        image_shape=(8, 8, 1), sequence_length=4, vocab_size=20)
    >>> classifier = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    >>> 0 <= conditional_accuracy(model, classifier, np.ones((6, 4), "int32"), np.arange(6) % 3) <= 1
    True
    """
    _check_classifier(classifier)
    images = generator.generate(texts, seed=seed, batch_size=batch_size)
    labels = _labels(labels, len(images))
    predicted = np.asarray(classifier.predict(images, batch_size=batch_size, verbose=0)).argmax(axis=-1)
    return float(np.mean(predicted == labels))


def image_diversity(images, labels, max_per_class=500):
    """Per class, the mean L2 distance between two different images of it (pixels in [0, 1]):
    `{class index: distance}`. Larger is more varied; a generator that ignores its noise gives 0.

    Args:
        images: float images `(n, h, w, c)` in [0, 1].
        labels: int class indices `(n,)`.
        max_per_class: int, at most this many images per class (the first ones). Defaults to `500`.

    Example:

    >>> images = np.zeros((4, 2, 2, 1), "float32"); images[1] = 1.0
    >>> image_diversity(images, np.array([0, 0, 1, 1]))  # class 0: one pair 2 apart; class 1: same images
    {0: 2.0, 1: 0.0}
    """
    images = np.asarray(images, "float32")
    labels = _labels(labels, len(images))
    check_positive_int("max_per_class", max_per_class)
    result = {}
    for label in np.unique(labels):
        flat = images[labels == label][:max_per_class].reshape(-1, int(np.prod(images.shape[1:]))).astype("float64")
        if len(flat) < 2:
            continue
        squares = np.sum(flat**2, axis=1)
        distances = np.sqrt(np.maximum(squares[:, None] + squares[None, :] - 2 * flat @ flat.T, 0))
        result[int(label)] = float(distances[np.triu_indices(len(flat), 1)].mean())
    return result


def class_diversity(generator, texts, labels, seed=0, max_per_class=500, batch_size=256):
    """`image_diversity` of the images `generator` draws for `texts` (one each, classes `labels`)."""
    return image_diversity(generator.generate(texts, seed=seed, batch_size=batch_size), labels, max_per_class)
