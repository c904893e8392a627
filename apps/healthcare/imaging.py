"""`dl-health train imaging`: anatomical segmentation of axial MRI slices (2D U-Net; 2.5D with
`--context K`: the K slices above and below as extra channels).

Embedded data (`--data colin27`): Debian `mricron-data`'s Colin27 T1 MRI (`ch2.nii.gz`) and
the AAL atlas on the same 1 mm grid (`aal.nii.gz`, 116 expert-drawn regions), the regions
merged into `GROUPS`. Users' data: `--data nifti:IMAGE,LABELS[;IMAGE,LABELS…]` or
`nifti:DIR` (pairs named `NAME.nii.gz` + `NAME_label(s)|_seg|_mask.nii.gz`).

Slices: axial planes of the RAS+ volume, shown in the neurological convention (the
patient's left on the image's left, anterior at the top), centre-cropped or zero-padded to
`SLICE_SHAPE` (1 mm pixels). Splits: slabs of `--slab` consecutive slices cycle through
train, validation and test with `--gap` slices dropped between slabs, so no slice, nor any
slice within `gap` of it, is in two splits.
"""

import glob
import os

import keras
import numpy as np
import tensorflow as tf

from apps.healthcare.configs import SLICE_SHAPE
from apps.healthcare.volumes import read_nifti, read_volume, to_isotropic
from shared import architectures
from shared.errors import UserError
from shared.evaluation.segmentation import overlays_png, pixel_counts, segment_serving, segmentation_scores
from shared.tasks import Data, DataInfo

MRICRON = "/usr/share/mricron/templates"
GROUPS = {  # AAL region name (without _L/_R) -> group; classes in this order after background
    "frontal": ("Precentral", "Frontal_Sup", "Frontal_Sup_Orb", "Frontal_Mid", "Frontal_Mid_Orb", "Frontal_Inf_Oper",
                "Frontal_Inf_Tri", "Frontal_Inf_Orb", "Rolandic_Oper", "Supp_Motor_Area", "Olfactory",
                "Frontal_Sup_Medial", "Frontal_Med_Orb", "Rectus", "Paracentral_Lobule"),
    "parietal": ("Postcentral", "Parietal_Sup", "Parietal_Inf", "SupraMarginal", "Angular", "Precuneus"),
    "temporal": ("Heschl", "Temporal_Sup", "Temporal_Pole_Sup", "Temporal_Mid", "Temporal_Pole_Mid", "Temporal_Inf"),
    "occipital": ("Calcarine", "Cuneus", "Lingual", "Occipital_Sup", "Occipital_Mid", "Occipital_Inf", "Fusiform"),
    "limbic_insula": ("Insula", "Cingulum_Ant", "Cingulum_Mid", "Cingulum_Post", "Hippocampus", "ParaHippocampal",
                      "Amygdala"),
    "subcortical": ("Caudate", "Putamen", "Pallidum", "Thalamus"),
    "cerebellum": ("Cerebelum_*", "Vermis_*"),
}
SPLIT_CYCLE = ("train", "train", "val", "train", "train", "test")
INTENDED_USE = ("Research and teaching: how a slice-wise anatomical segmenter is built, trained and "
                "evaluated. Not a medical device; not for diagnosis, surgical planning or any clinical use.")


def aal_groups(table_path=os.path.join(MRICRON, "aal.nii.txt")):
    """AAL label value -> group class index (1..7), from the atlas's own label table."""
    import fnmatch

    lookup = {}
    with open(table_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            region = parts[1].rsplit("_", 1)[0] if parts[1][-2:] in ("_L", "_R") else parts[1]
            for k, (group, names) in enumerate(GROUPS.items(), start=1):
                if any(fnmatch.fnmatch(region, pattern) for pattern in names):
                    lookup[int(parts[0])] = k
    return lookup


def colin27():
    """(image Volume, group label array on its grid) of the embedded atlas."""
    for name in ("ch2.nii.gz", "aal.nii.gz", "aal.nii.txt"):
        if not os.path.isfile(os.path.join(MRICRON, name)):
            raise UserError(f"--data colin27: {MRICRON}/{name} is missing; install Debian's mricron-data (make setup)")
    image, atlas = read_nifti(os.path.join(MRICRON, "ch2.nii.gz")), read_nifti(os.path.join(MRICRON, "aal.nii.gz"))
    table = np.zeros(256, np.int32)
    for value, group in aal_groups().items():
        table[value] = group
    return image, table[atlas.data.astype(np.int32)]


def fit_plane(plane, shape=SLICE_SHAPE):
    """A [X, Y, …] axial plane -> [rows, cols, …] in the display convention, centre-cropped
    or zero-padded to `shape`. `fit_plane(…, inverse)` is `unfit_plane`."""
    image = np.flip(np.swapaxes(plane, 0, 1), 0)  # rows: anterior first; columns: x (patient left first)
    return _centre(image, shape)


def _centre(image, shape):
    out = np.zeros(tuple(shape) + image.shape[2:], image.dtype)
    src, dst = [], []
    for have, want in zip(image.shape[:2], shape):
        if have >= want:
            start = (have - want) // 2
            src.append(slice(start, start + want))
            dst.append(slice(0, want))
        else:
            start = (want - have) // 2
            src.append(slice(0, have))
            dst.append(slice(start, start + have))
    out[tuple(dst)] = image[tuple(src)]
    return out


def unfit_plane(image, plane_shape):
    """The inverse of `fit_plane` for a [rows, cols] map: back to an [X, Y] plane."""
    rows, cols = plane_shape[1], plane_shape[0]
    back = _centre(image, (rows, cols))
    return np.swapaxes(np.flip(back, 0), 0, 1)


def volume_slices(data, context, shape=SLICE_SHAPE):
    """[Z, rows, cols, 2·context + 1] float32: each axial slice with its neighbours (edge
    slices repeated at the volume's ends)."""
    z = data.shape[2]
    planes = np.stack([fit_plane(data[:, :, k], shape) for k in range(z)])
    index = np.clip(np.arange(z)[:, None] + np.arange(-context, context + 1)[None], 0, z - 1)
    return planes[index].transpose(0, 2, 3, 1).astype(np.float32)


def slab_splits(z_range, slab, gap, cycle=SPLIT_CYCLE):
    """{"train"|"val"|"test": slice indices} over `z_range` (start, stop): slabs of `slab`
    slices through `cycle`, `gap` slices dropped after each slab."""
    start, stop = z_range
    out = {"train": [], "val": [], "test": []}
    slabs = {"train": [], "val": [], "test": []}
    k, z = 0, start
    while z < stop:
        block = list(range(z, min(z + slab, stop)))
        split = cycle[k % len(cycle)]
        out[split] += block
        slabs[split].append(block)
        k, z = k + 1, z + slab + gap
    return out, slabs


def _user_pairs(spec):
    """[(image path, labels path)] of `nifti:IMAGE,LABELS;…` or `nifti:DIR`."""
    if os.path.isdir(spec):
        pairs = []
        for path in sorted(glob.glob(os.path.join(spec, "*.nii*"))):
            stem = os.path.basename(path).split(".nii")[0]
            if any(stem.endswith(s) for s in ("_label", "_labels", "_seg", "_mask")):
                continue
            found = [p for s in ("_label", "_labels", "_seg", "_mask") for p in glob.glob(os.path.join(spec, f"{stem}{s}.nii*"))]
            if found:
                pairs.append((path, found[0]))
        if not pairs:
            raise UserError(f"--data nifti:{spec}: no NAME.nii.gz + NAME_label.nii.gz (or _labels, _seg, _mask) pairs")
        return pairs
    pairs = []
    for item in spec.split(";"):
        parts = item.split(",")
        if len(parts) != 2:
            raise UserError(f"--data nifti:{spec}: expected IMAGE,LABELS pairs separated by ';' (or a folder)")
        pairs.append(tuple(p.strip() for p in parts))
    return pairs


def load_volumes(cfg):
    """[(image Volume, integer labels on its grid)], class names, source description."""
    if cfg.data == "colin27":
        image, labels = colin27()
        return [(image, labels)], ("background",) + tuple(GROUPS), "Colin27 T1 + AAL groups (Debian mricron-data)"
    if not cfg.data.startswith("nifti:"):
        raise UserError(f"--data {cfg.data}: expected colin27, nifti:IMAGE,LABELS[;…] or nifti:DIR")
    volumes, values = [], set()
    for image_path, label_path in _user_pairs(cfg.data[len("nifti:"):]):
        image, labels = read_nifti(image_path), read_nifti(label_path)
        if image.data.shape != labels.data.shape or not np.allclose(image.affine, labels.affine, atol=1e-3):
            raise UserError(f"{label_path}: not on the grid of {image_path} (shape {labels.data.shape} vs "
                            f"{image.data.shape}, or a different affine)")
        if np.any(labels.data != np.round(labels.data)) or labels.data.min() < 0:
            raise UserError(f"{label_path}: labels must be non-negative integers (0 = background)")
        volumes.append((image, labels.data.astype(np.int32)))
        values |= set(np.unique(labels.data.astype(np.int32)).tolist())
    classes = sorted(values | {0})
    remap = np.zeros(max(classes) + 1, np.int32)
    remap[classes] = np.arange(len(classes))
    volumes = [(image, remap[labels]) for image, labels in volumes]
    return volumes, tuple("background" if v == 0 else f"label_{v}" for v in classes), f"nifti ({len(volumes)} volumes)"


def build_imaging_data(cfg):
    volumes, class_names, source = load_volumes(cfg)
    arrays = {"train": ([], []), "val": ([], []), "test": ([], [])}
    test_slabs = []
    for image, labels in volumes:
        data, factors = to_isotropic(image)
        if not np.allclose(factors, 1.0):
            from scipy.ndimage import zoom

            labels = zoom(labels, factors, order=0)
        head = np.where((labels > 0).any(axis=(0, 1)))[0]
        if not len(head):
            raise UserError(f"{image.source}: its label volume is all background")
        z_range = (max(0, head[0] - cfg.gap), min(data.shape[2], head[-1] + 1 + cfg.gap))
        slices = volume_slices(data, cfg.context)
        masks = np.stack([fit_plane(labels[:, :, k]) for k in range(labels.shape[2])])
        indices, slabs = slab_splits(z_range, cfg.slab, max(cfg.gap, cfg.context))
        for split, index in indices.items():
            arrays[split][0].append(slices[index])
            arrays[split][1].append(masks[index])
        for block in slabs["test"]:  # positions of each test slab's slices in the test split
            start = sum(len(s) for s in test_slabs)
            test_slabs.append(list(range(start, start + len(block))))
    arrays = {k: (np.concatenate(x), np.concatenate(y).astype(np.int32)) for k, (x, y) in arrays.items()}
    for split, (x, _) in arrays.items():
        if not len(x):
            raise UserError(f"--slab {cfg.slab}: no {split} slices; use thinner slabs (the volume spans too few)")
    datasets = {k: tf.data.Dataset.from_tensor_slices(v) for k, v in arrays.items()}
    channels = 2 * cfg.context + 1
    info = DataInfo(
        input_shape=SLICE_SHAPE + (channels,), input_dtype="float32", class_names=class_names,
        num_train=len(arrays["train"][0]), num_val=len(arrays["val"][0]), num_test=len(arrays["test"][0]),
        source=source, augment=_augmenter(cfg),
        extra={"test_slabs": test_slabs, "intended_use": INTENDED_USE,
               "limitations": ["One healthy adult's brain (Colin27, 27 averaged scans) and one atlas: the "
                               "model has seen one anatomy; other brains, scanners, contrasts or lesions need "
                               "their own labelled data.",
                               "Slice-wise: no 3-D consistency beyond the --context neighbour slices."],
               "provenance": {"provenance": "Colin27 (Holmes et al., 1998: 27 T1 scans of one adult averaged) "
                                            "and the AAL atlas drawn on it (Tzourio-Mazoyer et al., 2002), "
                                            "as packaged in Debian's mricron-data; AAL regions merged into "
                                            + ", ".join(GROUPS) + " (table in apps/healthcare/imaging.py)"
                              if cfg.data == "colin27" else f"the user's volumes {cfg.data}",
                              "licence": "mricron-data: BSD-style (Debian copyright file); AAL: free for "
                                         "research use, cite Tzourio-Mazoyer et al. 2002" if cfg.data == "colin27"
                              else "the user's",
                              "slices": f"axial slices of the RAS+ volume at 1 mm, {SLICE_SHAPE[0]}×{SLICE_SHAPE[1]} "
                                        "(centre crop/pad), rows anterior→posterior, columns patient left→right; "
                                        f"channel c holds slice z{'+' if channels > 1 else ''}"
                                        f"{'(c - ' + str(cfg.context) + ')' if channels > 1 else ''}; raw "
                                        "intensities (scaled inside the graph by the mean of the slice's non-zero pixels)"},
               "usage": ["SavedModel `serving_default(images: float32[N,%d,%d,%d]) -> {\"mask\": int32[N,%d,%d], "
                         "\"probabilities\": float32[N,%d,%d,%d]}`" % (*SLICE_SHAPE, channels, *SLICE_SHAPE,
                                                                        *SLICE_SHAPE, len(class_names)),
                         "`dl-health segment RUN scan.nii.gz|DICOM_DIR --out mask.nii.gz` (the label volume on "
                         "the scan's own grid and affine)"]})
    return Data(datasets["train"], datasets["val"], datasets["test"], info)


def _augmenter(cfg):
    """Geometry (shared mask-aware augmenter) plus MRI intensity changes: a random gamma and
    bias-like brightness scale per slice (the in-graph scaling removes a plain gain)."""
    from shared.data.augment import augmenter

    geometric = augmenter(cfg.augment, targets="mask", seed=cfg.seed)
    if geometric is None:
        return None
    generator = tf.random.Generator.from_seed(cfg.seed + 1)

    def augment(images, masks):
        images, masks = geometric(images, masks)
        n = tf.shape(images)[0]
        gamma = tf.exp(generator.uniform([n, 1, 1, 1], -0.3, 0.3))
        peak = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True) + 1e-6
        return peak * tf.pow(images / peak, gamma), masks

    return augment


@keras.saving.register_keras_serializable(package="dlsuite")
class ForegroundScale(keras.layers.Layer):
    """Divides each slice by the mean of its centre channel's non-zero pixels: MRI intensities
    have no absolute unit, so only ratios mean something."""

    def call(self, images):
        centre = images[..., images.shape[-1] // 2]
        present = keras.ops.cast(centre > 0, "float32")
        mean = keras.ops.sum(centre * present, axis=[1, 2]) / keras.ops.maximum(keras.ops.sum(present, axis=[1, 2]), 1.0)
        return images / keras.ops.reshape(keras.ops.maximum(mean, 1e-6), (-1, 1, 1, 1))


def build_imaging_model(cfg, info):
    """Raw float32 slices -> ForegroundScale -> U-Net -> per-pixel class probabilities."""
    images = keras.Input(shape=info.input_shape, dtype="float32", name="images")
    unet = architectures.build(cfg.model, input_shape=info.input_shape, num_classes=len(info.class_names),
                               base_filters=cfg.base_filters, depth=cfg.depth, bn_momentum=0.9)
    return keras.Model(images, unet(ForegroundScale(name="scale")(images)), name=f"imaging_{cfg.model}")


def dice_ce_loss(num_classes, smooth=1.0):
    """Per-example loss: pixel cross-entropy plus 1 - the mean soft Dice of the foreground
    classes (nnU-Net's recipe; small structures count as much as large ones)."""

    def loss(y_true, y_pred):
        crossentropy = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y_true, y_pred), axis=[1, 2])
        truth = tf.one_hot(tf.cast(y_true, tf.int32), num_classes)[..., 1:]
        pred = tf.cast(y_pred, tf.float32)[..., 1:]
        overlap = tf.reduce_sum(truth * pred, axis=[1, 2])
        dice = (2 * overlap + smooth) / (tf.reduce_sum(truth, axis=[1, 2]) + tf.reduce_sum(pred, axis=[1, 2]) + smooth)
        return crossentropy + 1.0 - tf.reduce_mean(dice, axis=-1)

    return loss


def surface_metrics(pred, true, k, spacing=(1.0, 1.0, 1.0)):
    """Dice and HD95 (mm) of class k in two label blocks, with DeepMind's surface-distance
    (Nikolov et al., 2018); HD95 is None where either side lacks the class."""
    import surface_distance

    a, b = true == k, pred == k
    dice = float(surface_distance.compute_dice_coefficient(a, b)) if a.any() or b.any() else None
    if not (a.any() and b.any()):
        return dice, None
    distances = surface_distance.compute_surface_distances(a, b, spacing)
    return dice, float(surface_distance.compute_robust_hausdorff(distances, 95))


def imaging_report(model, ds, info, plots_dir):
    """Pixel metrics over the test slices (shared), and per-class Dice and HD95 over each
    test slab as a 3-D block (1 mm voxels), averaged over slabs."""
    serving = segment_serving(model, info)
    call = tf.function(lambda x: serving(x, training=False)["mask"], reduce_retracing=True)
    images, truth, pred = [], [], []
    for x, y in ds.batch(16):
        pred.append(call(x).numpy())
        truth.append(y.numpy())
        images.append(x.numpy()[..., x.shape[-1] // 2])
    pred, truth = np.concatenate(pred), np.concatenate(truth)
    k = len(info.class_names)
    result = segmentation_scores(pixel_counts(truth, pred, k), info.class_names)
    per_class = {}
    for c in range(1, k):
        dices, hds = [], []
        for slab in info.extra["test_slabs"]:
            # [Z, rows, cols] -> voxel order does not matter for isotropic 1 mm distances
            dice, hd95 = surface_metrics(pred[slab], truth[slab], c)
            if dice is not None:
                dices.append(dice)
            if hd95 is not None:
                hds.append(hd95)
        per_class[info.class_names[c]] = {"dice": float(np.mean(dices)) if dices else None,
                                          "hd95_mm": float(np.mean(hds)) if hds else None}
    result["per_class_3d"] = per_class
    present = [v for v in per_class.values() if v["dice"] is not None]
    result["mean_dice_3d"] = float(np.mean([v["dice"] for v in present])) if present else 0.0
    hd = [v["hd95_mm"] for v in per_class.values() if v["hd95_mm"] is not None]
    result["mean_hd95_mm"] = float(np.mean(hd)) if hd else float("nan")
    result["num_slices"] = int(len(truth))
    shown = np.linspace(0, len(truth) - 1, min(8, len(truth))).astype(int)
    middle = np.concatenate(images)
    scale = np.percentile(middle[middle > 0], 99) if (middle > 0).any() else 1.0
    pictures = np.clip(middle[shown] / scale * 255, 0, 255).astype(np.uint8)
    plots = [overlays_png(pictures[..., None], truth[shown], pred[shown], os.path.join(plots_dir, "segmentation_overlays.png"))]
    return result, plots


def load_scan_slices(path, info):
    """`predict` on a scan: every axial slice of a NIfTI file or DICOM folder, with its context."""
    volume = read_volume(path)
    data, _ = to_isotropic(volume)
    return list(volume_slices(data, info.input_shape[-1] // 2, info.input_shape[:2]))


def segment_scan(model, info, scan, out, window=None, batch_size=8, verbose=True):
    """Segments every axial slice of a scan and writes the label volume on the scan's grid;
    returns {class: (voxels, millilitres)}."""
    import nibabel as nib
    from scipy.ndimage import zoom

    from apps.healthcare.volumes import write_labels

    volume = read_volume(scan, window)
    data, factors = to_isotropic(volume)
    slices = volume_slices(data, info.input_shape[-1] // 2, info.input_shape[:2])
    serving = segment_serving(model, info)
    call = tf.function(lambda x: serving(x, training=False)["mask"], reduce_retracing=True)
    labels = np.zeros(data.shape, np.int32)
    progress = keras.utils.Progbar(len(slices), unit_name="slice") if verbose else None
    for start in range(0, len(slices), batch_size):
        masks = call(slices[start:start + batch_size]).numpy()
        for k, mask in enumerate(masks):
            labels[:, :, start + k] = unfit_plane(mask, data.shape[:2])
        if progress:
            progress.update(min(start + batch_size, len(slices)))
    if labels.shape != volume.data.shape:  # back onto the scan's own voxel grid
        labels = zoom(labels, np.array(volume.data.shape) / np.array(labels.shape), order=0)
        labels = _centre(labels, volume.data.shape[:2])[:, :, :volume.data.shape[2]]
    write_labels(volume, labels, out)
    voxel_ml = float(np.prod(nib.affines.voxel_sizes(volume.affine))) / 1000
    counts = np.bincount(labels.ravel(), minlength=len(info.class_names))
    return {name: (int(n), round(n * voxel_ml, 2)) for name, n in zip(info.class_names, counts)}


def _window(text):
    if text is None:
        return None
    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--window: expected CENTER,WIDTH (e.g. 40,400); got '{text}'") from None
    if width <= 0:
        raise UserError(f"--window: the width must be positive; got {width:g}")
    return center, width


def segment_command(run, task, cfg, info, args):
    from shared.training.runs import load_model

    if run.task != "imaging":
        raise UserError(f"{run.path}: a {run.task} run; dl-health segment takes imaging runs")
    if not str(args.out).endswith((".nii", ".nii.gz")):
        raise UserError(f"--out {args.out}: expected a .nii or .nii.gz path")
    counts = segment_scan(load_model(run), info, args.scan, args.out, _window(args.window))
    print(args.out)
    for name, (voxels, ml) in counts.items():
        if name != "background":
            print(f"  {name:14s} {voxels:9d} voxels {ml:9.2f} ml")
