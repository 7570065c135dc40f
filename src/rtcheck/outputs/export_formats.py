"""The formats ``rtcheck export`` writes (a module of its own, so that the command line can
offer them without importing the exporters)."""

from __future__ import annotations

from typing import Literal

ExportFormat = Literal["fhir", "redcap", "redcap-json", "odm"]
FORMATS: tuple[ExportFormat, ...] = ("fhir", "redcap", "redcap-json", "odm")
