"""The driving app's task registry (policy, detect, lanes): one record per task, naming its
config (`configs.py`) and the functions of its data, model, metrics and serving (in the task's
own module). The layout rule: README.md, "Layout"."""

from apps.driving.configs import DetectConfig, LanesConfig, PolicyConfig
from shared.image_tasks import detection_task, segmentation_task
from shared.tasks import classifier_task, task_registry

TASKS = task_registry("drive")


@TASKS.register("policy")
def policy():
    from apps.driving import policy as p
    from shared.export.parity import value_parity

    return classifier_task(
        config=PolicyConfig,
        data=p.build_policy_data,
        model=p.build_policy,
        metrics=lambda model, ds, info, plots: p.policy_report(model, ds, info, plots,
                                                               info.extra.get("eval_episodes", 0)),
        decode=p.decode_actions,
        load_input=p.load_observation,
        serving=p.policy_serving,
        parity=value_parity,
        grow=p.grow_policy_data,
        description="decision making: behaviour cloning + DAgger from the IDM/MOBIL expert, closed-loop evaluation",
    )


@TASKS.register("detect")
def detect():
    from apps.driving.perception import build_detect_data

    return detection_task(DetectConfig, build_detect_data, "vehicle detection in the front-camera (or bird's-eye) frames")


@TASKS.register("lanes")
def lanes():
    from apps.driving.perception import build_lanes_data, lanes_report

    return segmentation_task(LanesConfig, build_lanes_data, "lane-marking segmentation of the front-camera frames",
                             report=lanes_report)
