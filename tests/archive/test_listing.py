"""`rtcheck results` on a terminal: the stored plans as a table by patient, within 100 columns."""

from __future__ import annotations

import json

from rtcheck.archive.listing import WIDTH, results_table


def row(patient, decision, checked, folder, failed="", status="ok", error=None, lesions=2):
    return {
        "patient_id": patient, "decision": decision, "status": status, "error": error,
        "checked_at": checked, "lesion_count": lesions, "failed_mandatory": failed,
        "files": json.dumps([f"{folder}/RS.dcm", f"{folder}/RD.dcm"]),
    }  # fmt: skip


def test_plans_are_grouped_by_patient_with_each_id_once():
    table = results_table([
        row("P-2", "not_excluded", "2026-01-03T10:00:00+00:00", "a/p3"),
        row("P-1", "excluded", "2026-01-02T10:00:00+00:00", "a/p2", "SpinalCord D0.03cc[Gy]"),
        row("P-1", "not_excluded", "2026-01-01T10:00:00+00:00", "a/p1"),
    ])  # fmt: skip
    lines = table.splitlines()
    assert lines[0].split() == ["Patient", "Decision", "Lesions", "Checked", "(UTC)", "Folder",
                                "Failed", "mandatory"]  # fmt: skip
    assert table.count("P-1") == 1 and table.count("P-2") == 1
    # P-1's older check first, then the newer one under it without the ID repeated.
    p1 = lines.index(next(line for line in lines if line.startswith("P-1")))
    assert "a/p1" in lines[p1] and "2026-01-01 10:00" in lines[p1]
    assert lines[p1 + 1].startswith(" ") and "a/p2" in lines[p1 + 1]
    assert lines[p1 + 1].rstrip().endswith("SpinalCord D0.03cc[Gy]")
    assert lines[-1] == "3 plans of 2 patients: 1 excluded, 2 not_excluded"


def test_long_failures_and_errors_wrap_within_100_columns_and_long_folders_keep_their_end():
    failed = "; ".join(f"Structure{i} D0.03cc[Gy]" for i in range(12))
    deep = "/archive/" + "very-long-department-folder/" * 3 + "plan-0042"
    table = results_table([
        row("P-1", "excluded", "2026-01-02T10:00:00+00:00", deep, failed),
        row(None, None, "2026-01-02T11:00:00+00:00", "x", status="error",
            error="unreadable RTDOSE: PixelData holds 10 bytes, 1,000 expected", lesions=None),
    ])  # fmt: skip
    assert max(map(len, table.splitlines())) <= WIDTH
    shown = next(w for w in table.split() if w.startswith("…"))
    assert deep.endswith(shown[1:]) and shown.endswith("/plan-0042") and len(shown) == 28
    joined = " ".join(line.strip() for line in table.splitlines())
    assert "Structure11 D0.03cc[Gy]" in joined and "1,000 expected" in joined
    assert "(none)" in table and "error" in table


def test_an_empty_database_says_so():
    assert results_table([]) == "no plans stored\n"
