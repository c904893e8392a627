"""Medical volumes in and out: NIfTI (nibabel) and DICOM series (pydicom), as RAS-oriented
float32 arrays at 1 mm, and label volumes written back on the input's own grid and affine.

Convention: a `Volume` holds `data[x, y, z]` in RAS+ order (x to the patient's Right, y
Anterior, z Superior, nibabel's canonical orientation) and its 4×4 voxel-to-world affine.
"""

import os
from dataclasses import dataclass

import numpy as np

from shared.errors import UserError


@dataclass
class Volume:
    data: np.ndarray  # [X, Y, Z] float32, RAS+
    affine: np.ndarray  # voxel -> world (mm), of `data`
    source: str
    original: object = None  # the input's nibabel image (its grid, orientation and affine)


def _canonical(image, source):
    import nibabel as nib

    canonical = nib.as_closest_canonical(image)
    data = np.asarray(canonical.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise UserError(f"{source}: expected a 3-D volume; got shape {tuple(data.shape)}")
    return Volume(data, canonical.affine, source, image)


def read_nifti(path):
    """A NIfTI file as a RAS+ Volume (any orientation on disk)."""
    import nibabel as nib

    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    try:
        image = nib.load(path)
        image.get_fdata(dtype=np.float32)  # reads (and checks) the voxels now
    except Exception as e:  # nibabel's errors for a truncated or foreign file
        raise UserError(f"{path}: not a readable NIfTI volume ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    return _canonical(image, path)


def _dicom_files(directory):
    import pydicom

    datasets = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=False)
        except Exception:  # noqa: BLE001 - not DICOM (a DICOMDIR's other files, notes): skipped
            continue
        if "PixelData" in ds:
            datasets.append((path, ds))
    if not datasets:
        raise UserError(f"{directory}: no DICOM images in this folder")
    return datasets


def read_dicom_series(directory, window=None):
    """One DICOM series (a folder of its slices) as a RAS+ Volume: slices sorted by their
    position along the slice normal, stored values rescaled (slope, intercept) to modality
    units, optionally clipped to a `window` (center, width). Raises UserError for mixed
    series, missing slices, or a transfer syntax pydicom cannot decode here."""
    import nibabel as nib

    datasets = _dicom_files(directory)
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for _, ds in datasets}
    if len(series) > 1:
        raise UserError(f"{directory}: mixed series ({len(series)} SeriesInstanceUIDs); put one series per folder")
    first = datasets[0][1]
    try:
        orientation = np.asarray(first.ImageOrientationPatient, np.float64)
        row, col = orientation[:3], orientation[3:]
        normal = np.cross(row, col)
        positions = np.array([np.asarray(ds.ImagePositionPatient, np.float64) for _, ds in datasets])
        spacing = [float(v) for v in first.PixelSpacing]
    except AttributeError as e:
        raise UserError(f"{directory}: slices lack geometry ({e}); not an image series with positions") from None
    order = np.argsort(positions @ normal)
    datasets, positions = [datasets[i] for i in order], positions[order]
    along = positions @ normal
    steps = np.diff(along)
    if len(steps) and (np.any(steps <= 1e-3) or np.max(steps) > 1.5 * np.median(steps)):
        where = int(np.argmax(steps)) if np.max(steps) > 1.5 * np.median(steps) else int(np.argmin(steps))
        kind = "duplicate slice positions" if np.any(steps <= 1e-3) else "missing slices"
        raise UserError(f"{directory}: {kind}: a step of {steps[where]:.2f} mm after "
                        f"{os.path.basename(datasets[where][0])} where the series steps {np.median(steps):.2f} mm")
    slices = []
    for path, ds in datasets:
        try:
            pixels = ds.pixel_array.astype(np.float32)
        except Exception as e:  # noqa: BLE001 - pydicom: no handler for this transfer syntax
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            name = getattr(syntax, "name", str(syntax))
            raise UserError(f"{path}: unsupported transfer syntax {name} ({syntax}); "
                            f"decompress the series first (e.g. gdcmconv --raw) [{type(e).__name__}]") from None
        slope, intercept = float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0)
        slices.append(pixels * slope + intercept)
    if len({s.shape for s in slices}) > 1:
        raise UserError(f"{directory}: slices of different sizes in one series")
    data = np.stack(slices, axis=-1)  # [rows, cols, slices]
    if window is not None:
        center, width = window
        data = np.clip(data, center - width / 2, center + width / 2)
    step = float(np.median(steps)) if len(steps) else float(getattr(first, "SliceThickness", 1.0) or 1.0)
    # DICOM patient coordinates are LPS; voxel (r, c, k) -> position + c*dc*row + r*dr*col + k*step*normal.
    lps = np.eye(4)
    lps[:3, 0] = col * spacing[0]
    lps[:3, 1] = row * spacing[1]
    lps[:3, 2] = normal * step
    lps[:3, 3] = positions[0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS -> RAS
    return _canonical(nib.Nifti1Image(data.astype(np.float32), affine), directory)


def read_volume(path, window=None):
    """A NIfTI file or a DICOM series folder."""
    if os.path.isdir(path):
        return read_dicom_series(path, window)
    volume = read_nifti(path)
    if window is not None:
        center, width = window
        volume.data = np.clip(volume.data, center - width / 2, center + width / 2)
    return volume


def to_isotropic(volume, spacing=1.0):
    """The volume resampled (linear) to `spacing` mm voxels; returns (data, zoom factors)."""
    from scipy.ndimage import zoom

    import nibabel as nib

    sizes = nib.affines.voxel_sizes(volume.affine)
    factors = sizes / spacing
    if np.allclose(factors, 1.0, atol=1e-3):
        return volume.data, np.ones(3)
    return zoom(volume.data, factors, order=1).astype(np.float32), factors


def write_labels(volume, labels, path):
    """Writes `labels` (on `volume`'s RAS grid) as a NIfTI label volume on the input's own
    voxel grid and with its affine, so it overlays the input in any viewer; atomic."""
    import nibabel as nib

    from shared.export.atomic import atomic_path

    original = volume.original
    start = nib.orientations.io_orientation(volume.affine)
    target = nib.orientations.io_orientation(original.affine)
    data = nib.orientations.apply_orientation(labels, nib.orientations.ornt_transform(start, target))
    image = nib.Nifti1Image(np.asarray(data, np.uint8 if labels.max(initial=0) < 256 else np.int16),
                            original.affine)
    image.header.set_qform(original.affine, code=1)
    image.header.set_sform(original.affine, code=1)
    suffix = ".nii.gz" if str(path).endswith(".nii.gz") else ".nii"
    with atomic_path(path) as tmp:
        nib.save(image, f"{tmp}{suffix}")
        os.replace(f"{tmp}{suffix}", tmp)
    return path
