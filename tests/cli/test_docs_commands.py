"""Every command in the README and the docs runs as written: each is extracted from the ```bash blocks and
parsed by the program it names (hfldm's CLI, the training and benchmark scripts' own parsers with their
--config files, make's targets), and the repository files it names exist; the cheap ones are run."""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import HfArgumentParser

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    "README.md",
    "space/README.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
]
BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
# folders whose files a command may name before an earlier command has written them
WRITTEN = (
    "data/",
    "runs/",
    "outputs/",
    "dist/",
    "models/ldm-text2im-large-256",  # written by the hfldm convert command before it
    "models/digits",
    "my_images",
    "path/",
    "/tmp",
    "/anywhere",
    "x.png",
    "small.png",
)
REPO_FILES = re.compile(r"^(?:training|benchmarks|models|space|docs|tests)/\S+$")
# what the README shows that these tests cannot run here: the network, the package manager, a shell builtin
SKIPPED = {
    "pip",
    "git",
    "cd",
    "apt-get",
    "export",
    "source",
    "curl",
    "huggingface-cli",
    "ls",
    "cp",
    "mkdir",
    "for",
    "do",
    "done",
}
CHEAP = ["hfldm env", 'hfldm generate --prompt "red apple" --num-images 4 --scheduler dpm']


def commands(doc: str) -> list[str]:
    """The commands of `doc`'s shell blocks: continuation lines joined, comments and blank lines dropped."""
    found = []
    for block in BLOCK.findall((REPO / doc).read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and (re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]) or words[0] == "nohup"):
                    words = words[1:]  # VAR=value and nohup prefixes
                redirect = next((i for i, w in enumerate(words) if w[:1] in ">&|" or w == "2>&1"), None)
                words = words[:redirect]  # `> log 2>&1 &`: the shell's, not the command's
                if words:
                    found.append(shlex.join(words))
    return found


ALL = [(doc, command) for doc in DOCS for command in commands(doc)]


class Parsed(BaseException):
    """Raised once a script's parser has accepted its arguments: the script stops before any work."""


def parse_script(script: Path, argv: list[str], monkeypatch) -> None:
    """Run `script` as __main__ with `argv` until its argparse / HfArgumentParser parser returns."""
    original, dataclasses_ = argparse.ArgumentParser.parse_args, HfArgumentParser.parse_args_into_dataclasses

    def parse_args(self, args=None, namespace=None):
        original(self, args, namespace)
        raise Parsed

    def parse_into_dataclasses(self, *args, **kwargs):
        dataclasses_(self, *args, **kwargs)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    monkeypatch.setattr(HfArgumentParser, "parse_args_into_dataclasses", parse_into_dataclasses)
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    monkeypatch.syspath_prepend(str(script.parent))
    with pytest.raises(Parsed):
        runpy.run_path(str(script), run_name="__main__")


OUTPUTS = {"--out", "--output_dir", "--output-dir", "--out_dir", "--work-dir"}  # what a command writes


def check_files(words: list[str]) -> None:
    """The repository files among `words` exist (not the ones a command writes)."""
    for previous, word in zip(["", *words], words, strict=False):
        flag, _, value = word.rpartition("=") if word.startswith("--") else ("", "", word)
        if previous in OUTPUTS or flag in OUTPUTS:
            continue
        if REPO_FILES.match(value) and not value.startswith(WRITTEN) and not {"$", "*"} & set(value):
            assert (REPO / value).exists(), f"{value} does not exist"


def test_the_docs_hold_commands():
    assert len(ALL) > 40 and any(c.startswith("hfldm generate") for _, c in ALL)


@pytest.mark.parametrize("doc, command", ALL, ids=[f"{d}:{c[:60]}" for d, c in ALL])
def test_command_parses_as_written(doc, command, monkeypatch):
    words = shlex.split(command)
    monkeypatch.chdir(REPO)
    check_files(words)
    if words[:2] == ["accelerate", "config"]:
        return  # interactive: asks about the machine
    if words[0] == "accelerate" and words[1] == "launch" and "-m" in words:  # `-m hfldm.cli ...`: the CLI
        words = ["hfldm", *words[words.index("-m") + 2 :]]
    elif words[0] == "accelerate" and words[1] == "launch":
        words = [
            "python",
            *words[next(i for i, w in enumerate(words) if w.endswith(".py")) :],
        ]  # launch flags
    if words[0] == "hfldm":
        from hfldm.cli import build_parser, either_spelling

        parser = build_parser()
        try:
            parser.parse_args(either_spelling(parser, words[1:]))
        except SystemExit as e:
            assert e.code == 0, f"{doc}: `{command}` does not parse"  # --help / --version exit 0
    elif words[0] == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M)
        assert all(w in targets for w in words[1:] if "=" not in w), f"{doc}: no make target in `{command}`"
    elif words[0] in ("python", "python3") and words[1] == "-m":
        if words[2] == "pytest":
            check_files([w.split("::")[0] for w in words[3:]])
        else:
            module = __import__(words[2], fromlist=["parse_args"])
            module.parse_args(words[3:])
    elif words[0] in ("python", "python3") and "parse_args" not in (REPO / words[1]).read_text():
        assert not words[2:], f"{doc}: `{command}`: {words[1]} takes no arguments"  # e.g. space/app.py
    elif words[0] in ("python", "python3"):
        parse_script(REPO / words[1], words[2:], monkeypatch)
    elif words[0] == "pytest":
        check_files([w.split("::")[0] for w in words[1:]])
    elif words[0] == "bash":
        assert (REPO / words[1]).is_file()
    else:
        assert words[0] in SKIPPED, f"{doc}: `{command}`: add a check for {words[0]}"


@pytest.mark.parametrize("command", CHEAP)
def test_cheap_commands_run(command, tmp_path):
    """Run in a scratch folder (their --out files land there), as a user would from a shell."""
    match = next((c for _, c in ALL if c.startswith(shlex.join(shlex.split(command)))), None)
    assert match is not None, f"the docs no longer show `{command}`"
    hfldm = Path(sys.executable).parent / "hfldm"
    words = shlex.split(match)
    result = subprocess.run(
        [str(hfldm), *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "warn(" not in result.stderr  # quiet: no library warnings
