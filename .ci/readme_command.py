"""Print a command of README's Quick start: `run` (the first sh block) or `test` (the second).

CI runs the test command from here, so the README's command is the one CI runs, not a copy of it.
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start_commands(text: str) -> dict[str, str]:
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M)
    if not section:
        raise SystemExit("README.md has no '## Quick start' section")
    blocks = re.findall(r"^```sh\n(.*?)\n```", section.group(1), re.S | re.M)
    if len(blocks) != 2:
        raise SystemExit(f"README.md Quick start: expected 2 sh blocks (run, test), found {len(blocks)}")
    return {"run": blocks[0].strip(), "test": blocks[1].strip()}


if __name__ == "__main__":
    print(quick_start_commands(README.read_text())[sys.argv[1]])
