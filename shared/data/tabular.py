"""Tables of records: schema inference, seeded splits, and the encoder that lives in the graph.

A table becomes one named input per column: float32 for a numeric column (NaN = missing),
string for a categorical one ("" = missing). The model's feature vector is made from them
with statistics fitted on the training split only:

- numeric: missing values imputed with the training median, then standardised with the
  training mean and standard deviation and clipped to ±5; plus a 0/1 missing indicator
  for every column that had missing values in training;
- categorical: one-hot over the training vocabulary (most frequent first, at most
  `MAX_CATEGORIES`), with one extra slot for values never seen in training.

`shared.architectures.tabular.TabularEncoder` applies them in the graph, so an exported
model takes raw records (NaN and unseen categories included) and needs no preprocessing code. Keras's `FeatureSpace` was the first choice; it has no missing-value
indicators or imputation and cannot take NaN, which clinical records are full of.
"""

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from shared.errors import UserError

MAX_CATEGORIES = 50  # a categorical column's vocabulary: its most frequent training values
CLIP = 5.0  # standardised numeric values are clipped to ±CLIP (outliers, unit mistakes)


@dataclass
class Column:
    """One input column: its name in the table, its serving input name, and its statistics."""

    name: str
    kind: str  # "numeric" | "categorical"
    input: str = ""
    mean: float = 0.0
    std: float = 1.0
    fill: float = 0.0
    missing: bool = False
    vocabulary: list = field(default_factory=list)

    @property
    def dtype(self):
        return "float32" if self.kind == "numeric" else "string"

    def width(self):
        return 1 + int(self.missing) if self.kind == "numeric" else len(self.vocabulary) + 1

    def feature_names(self):
        if self.kind == "numeric":
            return [self.name] + ([f"{self.name} (missing)"] if self.missing else [])
        return [f"{self.name}={v or '(missing)'}" for v in self.vocabulary] + [f"{self.name}=(other)"]


def input_name(column):
    """A column name as a TensorFlow signature argument name: letters, digits and `_` (other
    characters become `_`; TensorFlow itself renames `num.co` to `num_co`), starting with a letter."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(column).strip())
    return name if re.match(r"[A-Za-z]", name) else f"c_{name}"


def _is_numeric(values):
    import pandas as pd

    present = values.dropna()
    return bool(len(present)) and pd.to_numeric(present, errors="coerce").notna().all()


def infer_schema(frame, target, numeric=(), categorical=(), where="the table"):
    """Columns of `frame` other than `target`, numeric or categorical by their values unless
    named in `numeric` / `categorical`; raises UserError for a declared numeric column with
    text in it, or a declared column the table lacks."""
    import pandas as pd

    for declared in (*numeric, *categorical):
        if declared not in frame.columns:
            raise UserError(f"{where}: no column '{declared}' (declared with --numeric/--categorical)")
    columns, names = [], set()
    for name in frame.columns:
        if name == target:
            continue
        values = frame[name]
        if name in numeric:
            bad = values.dropna()[pd.to_numeric(values.dropna(), errors="coerce").isna()]
            if len(bad):
                raise UserError(f"{where}: column '{name}' is declared numeric but has non-numeric values "
                                f"(e.g. '{bad.iloc[0]}' in row {int(bad.index[0]) + 2})")
            kind = "numeric"
        elif name in categorical:
            kind = "categorical"
        else:
            kind = "numeric" if _is_numeric(values) else "categorical"
        column = Column(name, kind, input_name(name))
        if column.input in names:
            raise UserError(f"{where}: columns '{name}' and another one have the same input name '{column.input}'")
        names.add(column.input)
        columns.append(column)
    if not columns:
        raise UserError(f"{where}: no input columns besides the target '{target}'")
    return columns


def column_values(frame, column):
    """A column of `frame` as the model's raw input: float32 (NaN = missing) or str ("" = missing)."""
    import pandas as pd

    values = frame[column.name]
    if column.kind == "numeric":
        return pd.to_numeric(values, errors="coerce").to_numpy(np.float32)
    return np.array(["" if pd.isna(v) else str(v).strip() for v in values], dtype=object)


def fit_columns(frame, columns):
    """Fills in each column's statistics from `frame` (the training split)."""
    from collections import Counter

    for column in columns:
        values = column_values(frame, column)
        if column.kind == "numeric":
            present = values[~np.isnan(values)].astype(np.float64)
            column.missing = bool(len(present) < len(values))
            column.mean = float(present.mean()) if len(present) else 0.0
            column.std = float(present.std()) if len(present) > 1 and present.std() > 0 else 1.0
            column.fill = float(np.median(present)) if len(present) else 0.0
        else:
            counts = Counter(values.tolist())
            column.vocabulary = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:MAX_CATEGORIES]
    return columns


def records(frame, columns):
    """`{input name: array}` of `frame`'s rows: the raw inputs of a tabular model."""
    return {c.input: column_values(frame, c) for c in columns}


def split_indices(labels, seed, test=0.2, val=0.1, stratify=True):
    """Seeded (train, val, test) row indices; stratified by `labels` for classification."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    strata = labels if stratify else None
    rest, test_index = train_test_split(index, test_size=test, random_state=seed, stratify=strata)
    train_index, val_index = train_test_split(rest, test_size=val / (1 - test), random_state=seed,
                                              stratify=None if strata is None else labels[rest])
    return np.sort(train_index), np.sort(val_index), np.sort(test_index)


def write_feature_spec(encoder, directory):
    """`features.json` beside the TFLite files: the raw column -> feature vector recipe."""
    import os

    from shared.export.atomic import atomic_write_json

    path = os.path.join(directory, "features.json")
    atomic_write_json(path, {"features": encoder.feature_names(),
                             "columns": [asdict(c) for c in encoder.columns],
                             "recipe": "numeric: (value, or fill if missing, - mean) / std clipped to "
                                       f"±{CLIP}, then a 0/1 missing flag if `missing`; categorical: one-hot "
                                       "over `vocabulary`, then one slot for any other value"})
    return path
