"""dl-health imaging: the atlas groups, slab splits, slice geometry, NIfTI and DICOM readers,
`segment` on a scan's own grid, and a short training that learns."""

import json
import os

import numpy as np
import pytest

from apps.healthcare.imaging import (GROUPS, SLICE_SHAPE, aal_groups, fit_plane, slab_splits, unfit_plane,
                                     volume_slices)
from apps.healthcare.volumes import read_dicom_series, read_nifti, write_labels
from shared.errors import UserError
from tests.conftest import run_main


def test_every_aal_region_falls_in_one_group():
    groups = aal_groups()
    assert sorted(groups) == list(range(1, 117))  # all 116 AAL labels
    counts = np.bincount(list(groups.values()), minlength=len(GROUPS) + 1)[1:]
    assert (counts > 0).all() and counts[list(GROUPS).index("cerebellum")] == 26  # 18 hemisphere + 8 vermis


def test_slab_splits_never_share_or_touch_a_slice():
    indices, slabs = slab_splits((6, 160), slab=6, gap=2)
    sets = {k: set(v) for k, v in indices.items()}
    assert all(sets.values()) and not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    for a in sets:
        for b in sets:
            if a != b:  # neighbouring slices of two splits are at least gap + 1 apart
                assert min(abs(i - j) for i in sets[a] for j in sets[b]) >= 3
    assert all(len(block) == 6 for block in slabs["test"][:-1]) and len(slabs["test"]) >= 2


def test_slice_geometry_round_trips_and_keeps_the_convention():
    plane = np.arange(181 * 217, dtype=np.float32).reshape(181, 217)  # [x, y]
    image = fit_plane(plane)
    assert image.shape == SLICE_SHAPE
    assert np.array_equal(unfit_plane(image, plane.shape), plane)
    # Row 0 is the most anterior (largest y) row; column 0 the patient's left-most (smallest x).
    rows, cols = np.nonzero(image == plane[0, 216])
    assert (rows[0], cols[0]) == ((SLICE_SHAPE[0] - 217) // 2, (SLICE_SHAPE[1] - 181) // 2)
    stack = volume_slices(np.stack([plane] * 3, -1) * np.array([1, 2, 3], np.float32), context=1)
    assert stack.shape == (3,) + SLICE_SHAPE + (3,)
    assert np.allclose(stack[0, ..., 0], stack[0, ..., 1]) and np.allclose(stack[1, ..., 2], 1.5 * stack[1, ..., 1])


def _lps_volume(path):
    """A small NIfTI stored LPS (x and y flipped) with anisotropic voxels."""
    import nibabel as nib

    data = np.zeros((40, 50, 12), np.float32)
    data[10:30, 15:35, 3:9] = 100.0
    data[10:20, 15:35, 3:9] = 200.0
    affine = np.array([[-2.0, 0, 0, 40], [0, -2.0, 0, 50], [0, 0, 3.0, -10], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), path)
    return data, affine


def test_nifti_round_trip_keeps_the_affine_and_the_voxels(tmp_path):
    import nibabel as nib

    data, affine = _lps_volume(tmp_path / "scan.nii.gz")
    volume = read_nifti(str(tmp_path / "scan.nii.gz"))
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S") and volume.data.shape == (40, 50, 12)
    labels = (volume.data > 150).astype(np.int32) * 2 + (volume.data > 50)  # on the RAS grid
    write_labels(volume, labels, str(tmp_path / "mask.nii.gz"))
    written = nib.load(tmp_path / "mask.nii.gz")
    assert np.allclose(written.affine, affine) and written.shape == data.shape
    assert np.array_equal(np.asarray(written.dataobj), (data > 150) * 2 + (data > 50))


def _write_series(directory, positions, values, series="1.2.3", slope=2.0, intercept=-10.0, syntax=None):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    directory.mkdir(exist_ok=True)
    for k, (z, value) in enumerate(zip(positions, values)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.Modality, ds.InstanceNumber = series, "MR", len(positions) - k
        ds.Rows, ds.Columns, ds.PixelSpacing = 8, 6, [1.5, 1.5]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-4.5, -6.0, float(z)]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = np.full((8, 6), value, np.uint16).tobytes()
        if syntax:  # a compressed syntax: the bytes go in encapsulated fragments
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([b"\xff\xd8" + ds.PixelData])
            ds["PixelData"].VR = "OB"
        ds.save_as(directory / f"file{k:03d}.dcm", enforce_file_format=True)


def test_dicom_series_loads_in_slice_order_with_rescale(tmp_path):
    import nibabel as nib

    positions = [12.0, 0.0, 8.0, 4.0, 16.0]  # files written out of order
    _write_series(tmp_path / "series", positions, [int(z) + 1 for z in positions])
    volume = read_dicom_series(str(tmp_path / "series"))
    assert volume.data.shape == (6, 8, 5) and nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    assert np.allclose(volume.data[0, 0, :], [2 * (z + 1) - 10 for z in (0, 4, 8, 12, 16)])  # inferior first
    assert np.allclose(nib.affines.voxel_sizes(volume.affine), (1.5, 1.5, 4.0))


@pytest.mark.parametrize("case, expected", [
    ("mixed", "mixed series"), ("missing", "missing slices: a step of 8.00 mm"),
    ("syntax", "unsupported transfer syntax"), ("empty", "no DICOM images"),
])
def test_dicom_mistakes_are_named(tmp_path, case, expected):
    folder = tmp_path / "series"
    if case == "mixed":
        _write_series(folder, [0.0, 4.0], [1, 2], series="1.1")
        _write_series(tmp_path / "other", [8.0], [3], series="1.2")
        os.replace(tmp_path / "other" / "file000.dcm", folder / "zz.dcm")
    elif case == "missing":
        _write_series(folder, [0.0, 4.0, 12.0, 16.0], [1, 2, 3, 4])
    elif case == "syntax":
        _write_series(folder, [0.0, 4.0], [1, 2], syntax="1.2.840.10008.1.2.4.80")  # JPEG-LS: no decoder here
    else:
        folder.mkdir()
        (folder / "notes.txt").write_text("not dicom")
    with pytest.raises(UserError, match=expected):
        read_dicom_series(str(folder))


def test_segment_writes_labels_on_the_scans_grid(tmp_path):
    """An (untrained) tiny model through `segment_scan`: the label volume has the scan's
    shape and affine, whatever the scan's orientation and voxel size."""
    import nibabel as nib

    from apps.healthcare.imaging import build_imaging_model, segment_scan
    from apps.healthcare.configs import ImagingConfig
    from shared.tasks import DataInfo

    _, affine = _lps_volume(tmp_path / "scan.nii.gz")
    info = DataInfo(input_shape=SLICE_SHAPE + (3,), input_dtype="float32", class_names=("background", "a", "b"))
    model = build_imaging_model(ImagingConfig.tiny(), info)
    counts = segment_scan(model, info, str(tmp_path / "scan.nii.gz"), str(tmp_path / "out.nii.gz"), verbose=False)
    written = nib.load(tmp_path / "out.nii.gz")
    assert written.shape == (40, 50, 12) and np.allclose(written.affine, affine)
    assert sum(n for n, _ in counts.values()) == 40 * 50 * 12


@pytest.fixture(scope="module")
def imaging_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("imaging")
    result = run_main(["dl-health", "train", "imaging", "--run-name", "short", "--quiet", "--context", "0",
                          "--base-filters", "8", "--depth", "3", "--epochs", "8", "--warmup-epochs", "0",
                          "--augment", "none", "--learning-rate", "5e-3", "--lr-schedule", "constant", "--max-train-examples", "40",
                          "--export", ""], home)
    assert result.returncode == 0, result.stderr[-3000:]
    return home / "saved_models" / "health" / "imaging" / "short"


def test_short_imaging_training_learns_the_anatomy(imaging_run):
    """2D, 8 short epochs on 40 slices (the default trains 80 epochs on 78): the head is told from
    the rest better than by calling everything background, and an anatomical group is found
    (measured: loss 2.64 -> 1.65, background Dice 0.916 vs 0.875, temporal Dice 0.22)."""
    history = json.loads((imaging_run / "history.json").read_text())
    test = json.loads((imaging_run / "metrics.json").read_text())["test"]
    assert history[-1]["loss"] < 0.75 * history[0]["loss"]
    pixels = {k: v["pixels"] for k, v in test["per_class"].items()}
    share = pixels["background"] / sum(pixels.values())
    assert test["per_class"]["background"]["dice"] > 2 * share / (1 + share) + 0.02  # Dice of all-background
    assert max(v["dice"] or 0 for k, v in test["per_class"].items() if k != "background") > 0.12
    assert all(v["hd95_mm"] is None or v["hd95_mm"] >= 0 for v in test["per_class_3d"].values())
