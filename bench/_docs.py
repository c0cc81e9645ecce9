"""Writing a bench's figures into docs/performance.md between its markers."""

from __future__ import annotations

import re
from pathlib import Path

PERFORMANCE_MD = Path(__file__).parents[1] / "docs" / "performance.md"


def replace_figures(start: str, end: str, figures: str, *, new_section: str,
                    path: Path = PERFORMANCE_MD) -> None:
    """Put ``figures`` between the ``start``/``end`` markers (the section's prose stays);
    without them, append ``new_section`` with its ``{figures}`` replaced by the marked
    block."""
    text = path.read_text()
    block = f"{start}\n{figures}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + new_section.replace("{figures}", block) + "\n"
    path.write_text(text)
