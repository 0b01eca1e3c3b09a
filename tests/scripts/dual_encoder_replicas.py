"""A dual encoder's loss and gradients on two logical CPU devices vs one device, same global batch.

Run by tests/test_dual_encoder.py in its own process (logical devices must be set before
TensorFlow starts). Each replica's `compute_loss` is weighted as `mmkeras.distribute`'s training
loop weights it (times the number of replicas and the replica's share of the global batch: 1 for
equal halves), then summed over the replicas, as the strategy sums gradients. Prints one JSON
line: for each loss and each split of the global batch, the largest absolute difference of the
loss and of every gradient from one device's.
"""

import json
import sys


def main():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    import numpy as np

    from mmkeras.tasks import DualEncoder

    config = dict(
        image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"},
        text_encoder={"kind": "conv", "embedding_dim": 8, "filters": 8},
        embedding_dim=8, image_shape=(8, 8, 3), sequence_length=5, vocab_size=30,
    )
    rng = np.random.default_rng(0)
    images = rng.random((12, 8, 8, 3), dtype=np.float32)
    texts = rng.integers(1, 30, (12, 5)).astype("int32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {}
    # The last case is the control: negatives from the own replica only must give another loss.
    for loss, gather in (("contrastive", True), ("sigmoid", True), ("contrastive", False)):
        keras.utils.set_random_seed(1)
        single = DualEncoder(loss=loss, **config)

        def loss_and_gradients(model, x, weight=1.0):
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                value = model.compute_loss(x=x, y_pred=y_pred) * weight
            return value, [tf.convert_to_tensor(g) for g in tape.gradient(value, model.trainable_variables)]

        one_loss, one_grads = loss_and_gradients(single, {"image": images, "text": texts})
        with strategy.scope():
            mirrored = DualEncoder(loss=loss, gather_negatives=gather, **config)
        mirrored.set_weights(single.get_weights())
        for split in ((6, 6), (8, 4)):  # equal halves, and the uneven last batch of an epoch
            bounds = np.cumsum((0, *split))

            def local(context, array):
                i = context.replica_id_in_sync_group
                return tf.constant(array[bounds[i] : bounds[i + 1]])

            x = {
                "image": strategy.experimental_distribute_values_from_function(lambda c: local(c, images)),
                "text": strategy.experimental_distribute_values_from_function(lambda c: local(c, texts)),
            }
            def weighted(x):  # the replica's weight in mmkeras' loop: replicas x its share of the batch
                share = tf.cast(tf.shape(x["image"])[0], tf.float32) / float(len(images))
                return loss_and_gradients(mirrored, x, strategy.num_replicas_in_sync * share)

            value, grads = strategy.run(weighted, args=(x,))
            total = strategy.reduce("SUM", value, axis=None)
            summed = [strategy.reduce("SUM", g, axis=None) for g in grads]
            results[f"{loss}{'' if gather else '_local'}_{split[0]}_{split[1]}"] = {
                "loss": float(one_loss),
                "loss_difference": abs(float(total) - float(one_loss)),
                "gradient_difference": max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(summed, one_grads)),
                "gradient_scale": max(float(tf.reduce_max(tf.abs(g))) for g in one_grads),
                "replicas": strategy.num_replicas_in_sync,
            }
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
