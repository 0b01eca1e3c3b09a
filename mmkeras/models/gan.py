"""Text-conditioned GANs (`ConditionalGAN`): draw images from descriptions.

`text_gan` is GAN-CLS (Reed et al. 2016) at Fashion-MNIST's size: a DCGAN-style generator (noise
and the projected text features -> 7x7x128 -> 14x14x64 -> 28x28x1) against a convolutional
discriminator with a projection head (Miyato and Koyama 2018), both conditioned through one
bag-of-words/bigram text encoder trained by the discriminator's matching-aware loss. Train it on
image-description pairs (`mmkeras train --model text_gan --dataset fashion_mnist_descriptions`);
see docs/gan.md.
"""

from mmkeras.models.recipe import register_recipe

TINY = {
    "image_shape": (8, 8, 1),
    "text_encoder": {"embedding_dim": 4, "filters": 4},
    "noise_dim": 4,
    "condition_dim": 4,
    "generator_filters": (8, 4),
    "discriminator_filters": (4, 8),
    "sequence_length": 8,
    "vocab_size": 64,
}
TRAINING = {"epochs": 10, "batch_size": 64, "learning_rate": 2e-4, "warmup": 0.0}
# 3 epochs took 307 s (float32, model.fit) and 357 s (mmkeras train) on 2 CPU cores and reach the goal of docs/gan.md (conditional
# accuracy >= 80%); the GAN is still improving then.
DATASET_TRAINING = {"fashion_mnist_descriptions": {"epochs": 3, "batch_size": 64}}

text_gan = register_recipe(
    "text_gan",
    family="gan",
    description="A text-conditioned GAN (GAN-CLS): DCGAN-style generator, convolutional discriminator with a "
    "projection head, matching-aware loss, one bag-of-words/bigram text encoder.",
    reference="Reed et al. (2016), Generative Adversarial Text to Image Synthesis (GAN-CLS); Miyato and Koyama "
    "(2018), cGANs with Projection Discriminator; document 004, algorithm 4",
    tiny=TINY,
    task="mmkeras.tasks.ConditionalGAN",
    training=TRAINING,
    dataset_training=DATASET_TRAINING,
    text_encoder={"kind": "conv", "embedding_dim": 64, "filters": 128, "kernel_sizes": (1, 2)},
    noise_dim=64,
    condition_dim=64,
    generator_filters=(128, 64),
    discriminator_filters=(64, 128),
    conditioning="projection",
    image_shape=(28, 28, 1),
    sequence_length=16,
    vocab_size=1000,
)
