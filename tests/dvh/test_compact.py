"""Stored DVHs (dvh/compact.py) against the full DVHs they were made from: the phantom plan's
eight DVHs, every metric the trial protocol uses and more, within the stated tolerance (one
stored bin, 0.05 Gy, for doses; the volume of one bin for volumes; exact for Dmean and Dmax)."""

from __future__ import annotations

import math

import pytest

from rtcheck.dicom.plan import load_plan
from rtcheck.dvh.compact import STORED_BIN_GY, StoredDVHError, decode_dvh, encode_dvh
from rtcheck.dvh.metrics import evaluate_metric
from rtcheck.evaluation.eligibility import evaluate
from rtcheck.protocol.definition import load_protocol

DOSES = ("D0.03cc[Gy]", "D2cc[Gy]", "D95%[Gy]", "D50%[Gy]", "D2%[Gy]")
VOLUMES = ("V5Gy[%]", "V20Gy[%]", "V30Gy[cc]", "V45Gy[%]")


@pytest.fixture(scope="module")
def dvhs(phantom_dir):
    return evaluate(load_plan([phantom_dir]), load_protocol()).dvhs


def test_stored_dvhs_give_the_full_dvhs_metrics_within_one_stored_bin(dvhs):
    total = 0
    for name, _, full in dvhs:
        data = encode_dvh(full)
        total += len(data)
        stored = decode_dvh(name, data)
        assert stored.volume_cc == full.volume_cc and stored.mean_gy == full.mean_gy
        assert evaluate_metric("Max[Gy]", stored) == evaluate_metric("Max[Gy]", full)
        for metric in DOSES:
            a, b = evaluate_metric(metric, full), evaluate_metric(metric, stored)
            assert math.isnan(a) == math.isnan(b)
            if not math.isnan(a):
                assert abs(a - b) <= STORED_BIN_GY, (name, metric, a, b)
        for metric in VOLUMES:
            a, b = evaluate_metric(metric, full), evaluate_metric(metric, stored)
            one_bin = full.differential_cc.max() * STORED_BIN_GY / full.bin_width_gy
            scale = 100 / full.volume_in_grid_cc if metric.endswith("[%]") else 1.0
            assert abs(a - b) <= one_bin * scale + 1e-6, (name, metric, a, b)
    assert total < 20_000  # the README's figure: 15 kB for this plan


def test_bytes_that_are_not_a_stored_dvh_are_refused(dvhs):
    data = encode_dvh(dvhs[0][2])
    for broken in (b"", b"junk" * 20, data[:-5], b"RTD2" + data[4:]):
        with pytest.raises(StoredDVHError):
            decode_dvh("x", broken)
