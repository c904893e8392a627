"""The healthcare app's task registry (risk, imaging, treatment): one record per task, naming its
config (`configs.py`) and the functions of its data, model, metrics and serving (in the task's
own module). The layout rule: README.md, "Layout"."""

from apps.healthcare.configs import ImagingConfig, RiskConfig, TreatmentConfig
from apps.healthcare.risk import (build_risk_data, build_risk_model, calibrate_risk, decode_risk, explain_risk,
                                  load_records, risk_core, risk_loss, risk_report, risk_serving)
from apps.healthcare.imaging import (build_imaging_data, build_imaging_model, dice_ce_loss, imaging_report,
                                     load_scan_slices)
from apps.healthcare.treatment import (build_treatment_data, build_treatment_model, decode_effects,
                                       treatment_core, treatment_loss, treatment_report, treatment_serving)
from shared.evaluation.segmentation import decode_mask, pixel_accuracy_per_example, segment_serving
from shared.export.parity import mask_parity, value_parity
from shared.tasks import Task, task_registry

TASKS = task_registry("health")


@TASKS.register("risk")
def risk():
    return Task(
        config=RiskConfig,
        data=build_risk_data,
        model=build_risk_model,
        loss=risk_loss,
        metrics=risk_report,
        decode=decode_risk,
        load_input=load_records,
        serving=risk_serving,
        core=risk_core,
        parity=value_parity,
        calibrate=calibrate_risk,
        explain=explain_risk,
        description="disease risk from records: calibrated MLP with MC-dropout uncertainty (SUPPORT2, Framingham, CSV)",
    )


@TASKS.register("imaging")
def imaging():
    return Task(
        config=ImagingConfig,
        data=build_imaging_data,
        model=build_imaging_model,
        loss=lambda cfg, info: dice_ce_loss(len(info.class_names)),
        step_metrics={"pixel_accuracy": pixel_accuracy_per_example},
        metrics=imaging_report,
        decode=decode_mask,
        load_input=load_scan_slices,
        serving=segment_serving,
        parity=mask_parity,
        description="MRI anatomical segmentation: 2D/2.5D U-Net, Dice and HD95 per class (Colin27 + AAL, NIfTI, DICOM)",
    )


@TASKS.register("treatment")
def treatment():
    return Task(
        config=TreatmentConfig,
        data=build_treatment_data,
        model=build_treatment_model,
        loss=treatment_loss,
        metrics=treatment_report,
        decode=decode_effects,
        load_input=load_records,
        serving=treatment_serving,
        core=treatment_core,
        parity=value_parity,
        description="treatment effects: TARNet, CFR, Dragonnet over IHDP realisations (econml) or your CSV",
    )
