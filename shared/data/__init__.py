"""Data loaders (IDX, image folders, TFDS) and image helpers shared by the apps."""
