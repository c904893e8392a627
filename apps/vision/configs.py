"""The vision app's configs: one dataclass per task (every field is a `dl-vision train TASK`
flag) and `CONFIGS`, task name -> config class. Imports no TensorFlow, so flags are parsed and
checked before it starts."""

from dataclasses import dataclass

from shared.errors import UserError
from shared.image_configs import DetectorFields, SegmenterFields
from shared.training.config import TrainConfig


@dataclass
class ImageDataFields:
    """The image datasets of `load_image_arrays` (`--data`, and where and how big they are)."""

    data: str = "fashion_mnist"
    data_dir: str = ""
    download: bool = False
    image_size: int = 28
    channels: int = 1


@dataclass
class ClassifyConfig(TrainConfig, ImageDataFields):
    """Image classification. `--data fashion_mnist | mnist | scenes1 | tfds:NAME | folder:PATH`."""

    model: str = "cnn_bn3"
    model_size: int = 0  # resize images to this inside the model (0: keep the input size)
    backbone_preset: str = ""  # a local keras-hub preset directory: its backbone (weights too) replaces --model
    augment: str = "flip"
    num_scenes: int = 20000  # --data scenes1 only
    num_test_scenes: int = 2000  # --data scenes1 only
    synthetic_from: str = ""  # a synthesize run: its generated images join the training split
    synthetic_ratio: float = 1.0  # with --synthetic-from: generated images per real training image
    label_smoothing: float = 0.0  # target (1 - e) one-hot + e / classes
    test_time_flip: bool = True  # with --augment flip: serve the mean of the image's and its mirror's probabilities
    epochs: int = 13
    batch_size: int = 128
    lr_schedule: str = "cosine"
    learning_rate: float = 2e-3
    precision: str = "auto"  # bfloat16 where measured faster on this machine (1.3-1.6x on one, 0.97x on another)
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=32, max_train_examples=512, steps_per_execution=4, precision="float32",
                   export="", model="simple_cnn", augment="flip", early_stopping_patience=0)

    def validate(self):
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing: expected a number in [0, 1); got {self.label_smoothing}")
        return super().validate()


@dataclass
class VideoConfig(TrainConfig):
    """Video recognition on 16-frame 64x64 clips. `--data motion | tfds:ucf101 | folder:PATH`
    (one subfolder per class of video files or frame folders)."""

    data: str = "motion"
    data_dir: str = ""
    download: bool = False
    model: str = "video_r2plus1d"  # or video_cnn_lstm, video_conv_lstm
    filters: str = "16,32,64"
    stride: int = 2  # of the first convolution: a quarter of the cost
    dropout: float = 0.0
    num_clips: int = 8000  # --data motion: train + validation clips
    num_test_clips: int = 1000  # --data motion
    epochs: int = 15
    batch_size: int = 32
    lr_schedule: str = "cosine"
    learning_rate: float = 2e-3
    early_stopping_patience: int = 0  # motion is learnt suddenly after a few flat epochs (measured: epoch 4-5)

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=16, num_clips=160, num_test_clips=32, filters="8",
                   steps_per_execution=4, export="", early_stopping_patience=0)


@dataclass
class SceneConfig(TrainConfig):
    """Fields shared by the scene tasks (`--data scenes` is the embedded default)."""

    data: str = "scenes"
    data_dir: str = ""
    images: str = ""
    download: bool = False
    image_size: int = 128
    augment: str = "none"  # flip and contrast move boxes and masks with the pixels
    num_scenes: int = 20000
    num_test_scenes: int = 2000
    batch_size: int = 32
    lr_schedule: str = "cosine"

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=16, num_scenes=320, num_test_scenes=64, max_train_examples=256,
                   steps_per_execution=4, export="", augment="flip,contrast")


@dataclass
class SegmentConfig(SceneConfig, SegmenterFields):
    """Semantic segmentation. `--data scenes | tfds:oxford_iiit_pet | masks:IMAGES_DIR,MASKS_DIR`."""

    epochs: int = 6
    learning_rate: float = 5e-3
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.base_filters, cfg.depth, cfg.early_stopping_patience = 8, 2, 0
        return cfg


@dataclass
class DetectConfig(SceneConfig, DetectorFields):
    """Object detection. `--data scenes | tfds:voc/2007 | tfds:coco/2017 | coco:ANNOTATIONS.json --images DIR`."""

    augment: str = "flip"  # measured: mAP 0.383 vs 0.371 without, same seed and budget
    epochs: int = 6
    learning_rate: float = 2e-3


@dataclass
class FaceDetectConfig(DetectConfig):
    """Face detection. `--data faces` (embedded: real LFW faces and non-faces on photos), or
    any detection data whose one class is a face (`tfds:NAME`, `coco:ANNOTATIONS.json`)."""

    data: str = "faces"
    num_scenes: int = 6000
    num_test_scenes: int = 500
    augment: str = "flip,contrast"
    epochs: int = 8
    warmup_epochs: int = 1
    window_peer_scenes: int = 2000  # --data faces: training scenes of the window-pyramid peer (0: none)

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.window_peer_scenes = 30
        return cfg


@dataclass
class SynthesizeConfig(TrainConfig, ImageDataFields):
    """Class-conditional DCGAN. `--data fashion_mnist | mnist | tfds:NAME | folder:PATH` (28x28 grey)."""

    latent_dim: int = 64
    base_filters: int = 64
    judge: str = ""  # a classify run on the same classes (default: the newest one in saved_models/)
    eval_images: int = 5000  # real test images, and as many generated, for the Fréchet distance
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 2e-4
    momentum: float = 0.5  # Adam's beta_1, as in DCGAN
    lr_schedule: str = "constant"

    @classmethod
    def tiny(cls):
        return cls(epochs=1, batch_size=32, max_train_examples=512, latent_dim=16, base_filters=8,
                   eval_images=64, steps_per_execution=4, export="")


@dataclass
class FacesConfig(TrainConfig):
    """Face verification by embeddings. `--data orl | tfds:lfw | folder:PATH` (a folder per person)."""

    data: str = "orl"
    data_dir: str = ""
    download: bool = False
    image_size: int = 64
    crop: float = 1.0  # fraction of the central square kept before resizing (LFW's 250x250 photos: ~0.5)
    min_images: int = 4  # tfds/folder: people with fewer photos are left out
    val_identities: float = 0.15  # share of the people whose pairs choose the threshold
    test_identities: float = 0.25  # share of the people the test pairs come from
    target_far: float = 0.01  # the accept threshold's false-accept rate on validation pairs
    model: str = "cnn_gap"
    embedding_dim: int = 128
    dropout: float = 0.2
    arc_scale: float = 16.0
    arc_margin: float = 0.3
    augment: str = "flip,translate"
    validation_split: float = 0.2  # of each training person's photos, for early stopping
    epochs: int = 150
    batch_size: int = 32
    learning_rate: float = 2e-3
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 0

    @classmethod
    def tiny(cls):
        return cls(epochs=2, image_size=32, embedding_dim=16, export="")

    def validate(self):
        super().validate()
        if not 0 < self.crop <= 1:
            raise UserError(f"--crop: expected a fraction in (0, 1]; got {self.crop}")
        if not 0 < self.target_far < 1:
            raise UserError(f"--target-far: expected a rate in (0, 1); got {self.target_far}")
        if not (0 < self.val_identities < 1 and 0 < self.test_identities < 1
                and self.val_identities + self.test_identities < 1):
            raise UserError("--val-identities/--test-identities: expected shares in (0, 1) that leave people to "
                            f"train on; got {self.val_identities}, {self.test_identities}")
        return self


CONFIGS = {"classify": ClassifyConfig, "video": VideoConfig, "segment": SegmentConfig, "detect": DetectConfig, "face_detect": FaceDetectConfig, "synthesize": SynthesizeConfig, "faces": FacesConfig}
