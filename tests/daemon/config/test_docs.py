"""docs/configuration.md against the code: its examples parse, its messages are real, and
every key is there with its default."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
import yaml

from defectd.daemon.config import (
    DEFAULT_CONFIG_PATH,
    SECTIONS,
    ConfigError,
    ThresholdOverride,
    parse_config,
)
from tests.daemon.config.helpers import DOCS, camera, config, doc_yaml_blocks, parse


def test_every_yaml_example_in_the_docs_parses() -> None:
    blocks = doc_yaml_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        data = yaml.safe_load(block)
        if "line" not in data:  # a fragment: put it into the smallest config
            data = {**config(), **data}
        parse(data)


def documented() -> dict[str, dict[str, str]]:
    """Section → key → default cell, from the tables under each ``## `section` `` heading."""
    found: dict[str, dict[str, str]] = {}
    section = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"## `(\w+)`", line)
        if heading:
            section = heading[1]
            found[section] = {}
        elif line.startswith("## "):
            section = None
        row = re.match(r"\| `(\w+)` \| ([^|]+) \|", line)
        if section and row:
            found[section][row[1]] = row[2].strip()
    return found


def test_the_documented_messages_are_real() -> None:
    cameras = [
        camera(id="a"),
        camera(id="b", endpoint="tcp://10.0.0.22:5555"),
        camera(id="c", endpoint="tcp://10.0.0.23"),
    ]
    mapping = config(cameras=cameras, batching={"max_wait": 5}, engine={"max_batch": "16"})
    with pytest.raises(ConfigError) as caught:
        parse_config(mapping, str(DEFAULT_CONFIG_PATH), environ={})
    shown = re.search(r"```text\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert shown is not None
    assert caught.value.problems == shown[1].splitlines()


def test_every_key_is_documented_with_its_default() -> None:
    docs = documented()
    assert list(docs) == list(SECTIONS)
    effective = parse(config()).to_mapping()
    environment = {("model", "dir")}  # the others are null without environment variables
    for name, cls in SECTIONS.items():
        keys = [f.name for f in fields(cls)]
        if name == "model":
            keys += [f.name for f in fields(ThresholdOverride) if f.name != "target"]
        assert sorted(docs[name]) == sorted(keys), name
        defaults = effective["cameras"][0] if name == "cameras" else effective[name]
        for key, cell in docs[name].items():
            if key not in defaults:  # the threshold override keys: the card's
                assert cell == "the card's", (name, key)
            elif cell == "required":
                assert key in ("name", "id", "endpoint", "width", "height"), (name, key)
            elif (name, key) in environment:
                assert not cell.startswith("`"), (name, key)
            else:
                literal = re.match(r"`([^`]*)`", cell)
                assert literal, f"{name}.{key}: default {cell!r} is not a `literal`"
                assert yaml.safe_load(literal[1]) == defaults[key], (name, key, cell)
