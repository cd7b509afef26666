"""YAML read strictly: a duplicate key is an error (PyYAML silently keeps the last one).

One loader for every YAML file defectd reads — the daemon's config and a data set's
dataset.yaml — so both refuse the same mistakes with the same message.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys, naming the line of the first one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                message = f"key {key!r} appears twice (first on line {seen[key] + 1})"
                raise ConstructorError(None, None, message, key_node.start_mark)
            if isinstance(key, Hashable):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)
