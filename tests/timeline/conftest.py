"""Every reading the timeline tests produce is held against its own record."""
from __future__ import annotations

import pytest

from tests.timeline.consistency import check_reading


@pytest.fixture(autouse=True)
def readings_match_their_tables(monkeypatch):
    """Wrap report.reading_line (format_timeline and write_png call it by that name):
    a reading that states a figure its record does not hold fails the test it came up in."""
    from gillab.timeline import report

    original = report.reading_line

    def checked(tl):
        text = original(tl)
        check_reading(tl.to_dict(), text)
        return text
    monkeypatch.setattr(report, "reading_line", checked)
