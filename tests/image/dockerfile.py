"""The repository's Dockerfile, read one instruction per logical line (backslash continuations
joined), which is all this Dockerfile uses: no heredocs, no parser directives beyond comments."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: FROM, RUN, ENV, ..."""
    arguments: str
    stage: int
    """0 for the first FROM's stage, 1 for the next, ..."""


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    found: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        stage += keyword == "FROM"
        found.append(Instruction(keyword, arguments.strip(), stage))
    return found


def final_stage(path: Path = DOCKERFILE) -> list[Instruction]:
    """The instructions of the stage the image is made of (the last one)."""
    every = instructions(path)
    last = every[-1].stage
    return [instruction for instruction in every if instruction.stage == last]


def exec_form(arguments: str) -> list[str]:
    """`["spillover", "controller"]` as a list; a shell form would run under /bin/sh -c, which
    the chart's `command` does not do, so it is refused."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not an exec-form JSON array: {arguments}"
    return [str(item) for item in value]


def env(stage: list[Instruction]) -> dict[str, str]:
    """ENV key=value pairs of a stage, later ones winning (values may be quoted)."""
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.arguments):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def one(stage: list[Instruction], keyword: str) -> str:
    """The arguments of the stage's last `keyword` (the one that takes effect)."""
    matching = [instruction.arguments for instruction in stage if instruction.keyword == keyword]
    assert matching, f"the Dockerfile's final stage has no {keyword}"
    return matching[-1]
