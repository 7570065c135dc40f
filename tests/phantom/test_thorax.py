"""The phantoms' contours: the bundled one as a TPS exports them, the clinical-size one denser."""

from __future__ import annotations

import numpy as np
import pytest

from rtcheck.phantom.synthetic import TPS_OUTLINE, Outline
from rtcheck.phantom.thorax import CLINICAL, ThoraxPhantom, rois


def test_outlines_are_drawn_as_densely_as_asked():
    assert TPS_OUTLINE.vertices(2 * np.pi * 10) == 42  # 62.8 mm at 1.5 mm
    assert TPS_OUTLINE.vertices(2000) == 180 and TPS_OUTLINE.vertices(3) == 16
    assert Outline(0.75, 1200).vertices(911) == 1200


def test_the_clinical_phantom_has_clinical_contours():
    # Contours every 1.25 mm with several hundred points each; the default phantom keeps
    # 2.5 mm planes and at most 180 points.
    clinical = {spec.name: spec for spec in rois(CLINICAL)}
    default = {spec.name: spec for spec in rois(ThoraxPhantom())}
    body = clinical["BODY"].planes
    assert np.diff([z for z, _ in body]) == pytest.approx(np.full(len(body) - 1, 1.25))
    assert len(body[0][1][0]) == 1200
    lung = max(len(polys[0]) for _, polys in clinical["Lung Rt"].planes)
    assert 500 <= lung <= 1200  # the right lung's largest section: 545 points
    assert max(len(polys[0]) for _, polys in default["Lung Rt"].planes) == 180
    assert CLINICAL.dose_spacing_mm == 1.5
    assert sum(len(p[0]) for spec in clinical.values() for _, p in spec.planes) > 500_000
