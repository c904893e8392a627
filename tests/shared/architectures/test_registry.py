"""Every registered architecture has a spec (a `SPECS` entry in some
tests/shared/architectures/test_*.py) and passes `run_builder_test` with it."""

import importlib
import inspect
import pathlib

import pytest

from shared import architectures
from shared.architectures import summary
from tests.shared.architectures.harness import run_builder_test

_HERE = pathlib.Path(__file__).parent


def _collect_specs():
    specs = {}
    for path in sorted(_HERE.glob("test_*.py")):
        if path.stem == "test_registry":
            continue
        module = importlib.import_module(f"tests.shared.architectures.{path.stem}")
        for name, spec in getattr(module, "SPECS", {}).items():
            assert name not in specs, f"two SPECS for '{name}'"
            specs[name] = spec
    return specs


SPECS = _collect_specs()


@pytest.mark.parametrize("name", architectures.names())
def test_registered_builder(name):
    assert name in SPECS, f"architecture '{name}' has no SPECS entry in tests/shared/architectures/"
    spec = SPECS[name]()
    cls = architectures.get(name)
    run_builder_test(cls, **spec)


def test_every_spec_names_a_registered_architecture():
    assert sorted(set(SPECS) - set(architectures.names())) == []


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="nope") as info:
        architectures.get("nope")
    for name in architectures.names():
        assert name in str(info.value)
    with pytest.raises(ValueError, match="resnet18"):
        architectures.build("nope")


# Bad values for common arguments; each builder must reject at least one of those it
# accepts with a keras-hub style message ("... Received: arg=value").
_PROBES = {
    "num_classes": -1, "input_shape": (0,), "filters": (0,), "widths": (0,), "units": (0,),
    "dropout": 2.0, "depth": 0, "num_layers": 0, "hidden_dim": 0, "latent_dim": 0,
}


@pytest.mark.parametrize("name", architectures.names())
def test_invalid_argument_mentions_received(name):
    cls = architectures.get(name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = SPECS[name]()["init_kwargs"] if name in SPECS else {}
    messages = []
    for arg, bad in _PROBES.items():
        if arg not in accepted:
            continue
        try:
            cls(**{**kwargs, arg: bad})
        except ValueError as e:
            messages.append(str(e))
    assert messages, f"{name} accepted every bad value of {sorted(set(_PROBES) & set(accepted))}"
    assert all("Received" in m for m in messages), messages


MINE = ("cnn", "resnet", "mlp", "keras_hub_backbone", "unet", "video", "detection")


def test_describe_lists_every_variant():
    rows = summary.describe([v for v, kw in architectures.variants().items()
                             if architectures._VARIANTS[v][0] in MINE and v not in
                             ("resnet34", "resnet50", "resnet50_v2")])  # big ones: see test_resnet
    by_variant = {r["variant"]: r for r in rows}
    assert by_variant["simple_cnn"]["params"] == 34_826
    assert by_variant["simple_cnn"]["architecture"] == "cnn"
    for row in rows:
        assert set(row) == {"variant", "architecture", "params", "doc"}, row
        assert row["params"] > 0 and row["doc"]
    assert {r["architecture"] for r in rows} == set(MINE)
