"""The READMEs are reStructuredText that renders: a broken table or a bad inline markup would
show up as raw text on the project page."""

from __future__ import annotations

import io
from pathlib import Path

import docutils.core
import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = sorted([ROOT / "README.rst", *ROOT.glob("tools/**/README.rst")])


@pytest.mark.parametrize("path", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_renders_without_warnings(path: Path) -> None:
    warnings = io.StringIO()
    docutils.core.publish_doctree(
        path.read_text(),
        source_path=str(path),
        settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": warnings},
    )
    assert warnings.getvalue() == ""


def test_quick_start_has_the_two_commands() -> None:
    text = (ROOT / "README.rst").read_text()
    quick = text[text.index("Quick start") :][:3000]
    assert "python -m lb serve" in quick
    assert "pip install -e '.[test]'" in quick and "pytest" in quick
