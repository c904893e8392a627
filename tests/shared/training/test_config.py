import pytest

from apps.vision.configs import ClassifyConfig
from shared.errors import UserError
from shared.training import config as C


def test_yaml_then_flags_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nbatch-size: 64\noptimizer: sgd\n")
    cfg = C.resolve(ClassifyConfig, config_file=str(path), overrides={"epochs": "3", "jit_compile": "true"})
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.jit_compile) == (3, 64, "sgd", True)


def test_tiny_is_small_and_round_trips_through_yaml(tmp_path):
    cfg = C.resolve(ClassifyConfig, tiny=True)
    assert cfg.epochs <= 2 and cfg.max_train_examples <= 1024 and cfg.export == ""
    path = tmp_path / "c.yaml"
    path.write_text(C.dump_yaml(cfg))
    assert C.resolve(ClassifyConfig, config_file=str(path)) == cfg


@pytest.mark.parametrize("overrides, message", [
    ({"optimizer": "lbfgs"}, "--optimizer: expected one of adam, adamw, sgd, rmsprop; got 'lbfgs'"),
    ({"epochs": "three"}, "--epochs: expected int; got 'three'"),
    ({"epochs": "0"}, "--epochs: expected a positive integer; got 0"),
    ({"precision": "int4"}, "--precision: expected one of"),
    ({"quantize": "none,int3"}, "--quantize: expected a comma list of none, dynamic, float16, int8; got 'int3'"),
    ({"validation_split": "1.5"}, "--validation-split"),
    ({"colour": "red"}, "unknown config field 'colour'"),
])
def test_bad_values_raise_user_errors(overrides, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        C.resolve(ClassifyConfig, overrides=overrides)


def test_bad_yaml_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        C.resolve(ClassifyConfig, config_file=str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="expected a mapping"):
        C.resolve(ClassifyConfig, config_file=str(bad))
