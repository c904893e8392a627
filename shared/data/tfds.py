"""TFDS access shared by every app: offline by default, one-line errors."""

from shared.errors import UserError


def prepared_builder(name, data_dir="", download=False):
    """A prepared TFDS builder for `name` in `data_dir` (offline unless `download`), or a
    one-line UserError naming the flags to fix."""
    import tensorflow_datasets as tfds

    where = data_dir or "~/tensorflow_datasets"
    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
        if download:
            builder.download_and_prepare()
        builder.info.splits["train"]  # noqa: B018 -- raises when the dataset is not prepared
    except Exception as e:  # TFDS raises many types for a missing/unprepared dataset
        detail = str(e).strip().splitlines()[0][:150] if str(e).strip() else ""
        raise UserError(f"--data tfds:{name} --data-dir {where}: cannot load a prepared dataset (use "
                        f"--download where a network is available) ({type(e).__name__}: {detail})") from None
    return builder
