"""Tasks: zoo models that know what they are (their head, preprocessing, post-processing, serving).

- `Task`: the base protocol (a `keras.Model` built functionally, `get_config` = constructor args).
- `HeadTask`: a task whose outputs are `mmkeras.heads` heads.
- `FusionClassifier`: image encoder + text encoder -> fusion -> head (the zoo's family).
- `Captioner`: an image encoder's sequence read by an LSTM or Transformer decoder (captioning).
- `DualEncoder`: an image tower and a text tower in one embedding space (retrieval, zero-shot).
- `ConditionalGAN`: a text-conditioned GAN that draws images from descriptions (GAN-CLS).
- `ModelTask`: any Keras model with dict inputs, made a task by naming its head (your own model,
  or a `.keras` file written by mmkeras 0.1).
"""

from mmkeras.tasks.captioner import Captioner
from mmkeras.tasks.dual_encoder import DualEncoder
from mmkeras.tasks.fusion_classifier import FusionClassifier
from mmkeras.tasks.gan import ConditionalGAN
from mmkeras.tasks.head_task import HeadTask
from mmkeras.tasks.model_task import ModelTask
from mmkeras.tasks.task import Task

__all__ = ["Captioner", "ConditionalGAN", "DualEncoder", "FusionClassifier", "HeadTask", "ModelTask", "Task"]
