"""Every Python example in README.md runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_examples_to_check():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("source", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_a_readme_example_runs(source):
    exec(compile(source, str(README), "exec"), {"__name__": "readme_example"})


def test_the_readme_opens_with_the_two_set_up_commands():
    first_block = re.search(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]


def test_ci_runs_the_two_set_up_commands_as_written_before_anything_else():
    script = (README.parent / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines() if line.strip().startswith("make ")]
    assert commands[:2] == ["make run", "make test"]
