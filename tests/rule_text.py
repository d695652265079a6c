"""The rules as text: each rule's directives read from rules/*.smk (the env and SLURM tests
check what a rule declares without running Snakemake)."""

import re
from functools import cache

from conftest import ROOT


def _directive(lines, start, indent):
    """Text of a rule directive: the rest of its line plus the lines indented deeper."""
    first = lines[start].split(":", 1)[1].strip()
    body = [first] if first else []
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return "\n".join(body)


@cache
def rule_blocks():
    """rule name -> {"file": Path, and each directive's text: "conda", "script", "resources", ...}."""
    rules = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)(?:rule|checkpoint)\s+(\w+)\s*:", line)
            if not m:
                continue
            indent = len(m.group(1))
            block = {"file": smk}
            for j in range(i + 1, len(lines)):
                if lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) <= indent:
                    break
                d = re.match(rf"^\s{{{indent + 4}}}(\w+):", lines[j])
                if d and len(lines[j]) - len(lines[j].lstrip()) == indent + 4:
                    block[d.group(1)] = _directive(lines, j, indent + 4)
            rules[m.group(2)] = block
    return rules
