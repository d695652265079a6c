"""The front door stays true: README's size and commands, links that resolve, every config section documented."""

import re

import pytest
import yaml

from conftest import ROOT

PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_a_front_door_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    # .ci/run calls the test command README gives.
    assert "./setup.sh run" in readme and "./setup.sh test" in readme
    assert "./setup.sh test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:|#", target):
            continue
        if not (page.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_line_is_a_wall_of_text(page):
    # A table row of 1,749 characters is unreadable on any screen: cells stay short, prose goes below.
    assert max(len(line) for line in page.read_text().splitlines()) <= 400


def test_config_readme_documents_every_section_and_preset():
    text = (ROOT / "config" / "README.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())

    def documented(key):
        return f"`{key}`" in text or f"`{key}." in text or any(re.search(rf"(?<![\w.]){re.escape(key)}\b", h) for h in headings)

    assert [key for key in schema["properties"] if not documented(key)] == []
    presets = [p.name for p in (ROOT / "config").glob("*.yaml") if p.name != "config.yaml"]
    assert [name for name in presets if f"config/{name}" not in text and f"`{name}`" not in text] == []
