"""Report captions are reStructuredText: `snakemake --report` renders each with docutils."""

import io

import pytest
from docutils.core import publish_parts

from conftest import ROOT

CAPTIONS = sorted((ROOT / "workflow" / "report").glob("*.rst"))


@pytest.mark.parametrize("caption", CAPTIONS, ids=[c.name for c in CAPTIONS])
def test_caption_renders_without_docutils_warnings(caption):
    # A bare |b| or |z|^2 is a substitution reference to docutils (ERROR/3 in the report's output).
    messages = io.StringIO()
    publish_parts(caption.read_text(), writer_name="html", settings_overrides={"warning_stream": messages, "report_level": 2})
    assert messages.getvalue() == ""
