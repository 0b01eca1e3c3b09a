"""README stays true: its zoo table lists exactly the registered models, and CI runs its test command."""

import os
import re

import mmkeras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def zoo_table():
    """The README table of registered models (regenerate with `python -m tests.test_readme`)."""
    rows = ["| model | family | description |", "|---|---|---|"]
    for name in mmkeras.list_models():
        entry = mmkeras.get_entry(name)
        rows.append(f"| `{name}` | {entry.family} | {' '.join(entry.description.split())} |")
    return "\n".join(rows)


def test_readme_lists_every_registered_model():
    readme = _read("README.md")
    table = re.search(r"<!-- zoo:start -->\n(.*?)\n<!-- zoo:end -->", readme, re.S)
    assert table, "README.md lost its zoo table markers"
    assert table.group(1) == zoo_table(), "README's zoo table is stale: run `python -m tests.test_readme`"


def test_ci_runs_the_readme_test_command():
    readme = _read("README.md")
    commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert len(commands) >= 2, "README must show the set-up commands near its top"
    test_command = commands[1].strip()
    assert "pytest" in test_command
    ci_lines = [line.strip() for line in _read(".ci", "run").splitlines()]
    assert test_command in ci_lines


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    """A new user's first steps: build S1, fit it on numpy arrays, save, reload, predict."""
    readme = _read("README.md")
    example = re.findall(r"```python\n(.*?)\n```", readme, re.S)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    assert (tmp_path / "s1.keras").exists()


if __name__ == "__main__":
    path = os.path.join(ROOT, "README.md")
    text = _read("README.md")
    text = re.sub(r"(<!-- zoo:start -->\n).*?(<!-- zoo:end -->)", lambda m: m.group(1) + zoo_table() + "\n" + m.group(2), text, flags=re.S)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print("README zoo table updated")
