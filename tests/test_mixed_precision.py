"""bf16 mixed precision (autocast) leaves the entropy model exact; checked here on the CPU's autocast,
and on a GPU by tests/test_gpu.py."""

from __future__ import annotations

import pytest
import yaml

from gencodec.pretrained import untrained_model

from .conftest import ROOT
from .mixed_precision_checks import check_a_bf16_codec_step, check_entropy_model_ignores_autocast


def _tiny():
    torch_model = untrained_model("pixel", **yaml.safe_load(open(ROOT / "configs" / "tiny.yaml"))["model"])
    torch_model.update_tables()
    return torch_model


def test_the_entropy_model_ignores_autocast():
    check_entropy_model_ignores_autocast(_tiny(), "cpu")


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_bf16_codec_step_is_finite_and_float32_where_it_counts(channels_last):
    check_a_bf16_codec_step(_tiny(), "cpu", channels_last)
