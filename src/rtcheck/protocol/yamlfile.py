"""Reading the YAML files users write (protocols, map files), within bounds.

Protocol and map files are small tables: rtcheck reads them with PyYAML's safe loader, refuses a
file larger than :data:`~rtcheck.caps.YAML_BYTES`, and refuses anchors and aliases, which
such tables do not need and which let a few lines expand into gigabytes (an alias bomb). Only
regular files are read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from rtcheck.caps import YAML_BYTES
from rtcheck.dicom.files import is_regular_file
from rtcheck.errors import YamlFileError

#: The deepest nesting of lists and mappings accepted: a protocol needs about 6; PyYAML
#: recurses once per level, and a few thousand exhaust Python's stack.
MAX_NESTING = 50


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors, aliases and deep nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_NESTING} levels deep", mark
                )
            return self._compose(parent, index)
        finally:
            self._depth -= 1

    def _compose(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in rtcheck's files", mark
            )
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors (&name) are not allowed in rtcheck's files", event.start_mark
            )
        return super().compose_node(parent, index)


def read_yaml(path: str | os.PathLike[str], what: str) -> tuple[Any, bytes]:
    """The document of a YAML file and the file's bytes.

    Parameters
    ----------
    what
        What the file is, for messages ("the map file").

    Raises
    ------
    YamlFileError
        It cannot be read, is not a regular file, is too large, is not YAML, or uses anchors
        and aliases.
    """
    try:
        if Path(path).exists() and not is_regular_file(path):
            raise YamlFileError("not a regular file")
        size = Path(path).stat().st_size
        if size > YAML_BYTES.value:
            raise YamlFileError(
                f"{size:,} bytes, more than the limit of {YAML_BYTES.value:,} "
                f"(set {YAML_BYTES.variable} to raise it)"
            )
        data = Path(path).read_bytes()
    except OSError as exc:
        raise YamlFileError(f"cannot read {what} ({exc.strerror})") from None
    return parse_yaml(data), data


def parse_yaml(data: bytes | str) -> Any:
    """The document of YAML text (see :func:`read_yaml`)."""
    try:
        return yaml.load(data, Loader=_NoAliasLoader)  # noqa: S506 - a safe loader's subclass
    except RecursionError:  # flow-style nesting ("[[[[...") recurses in the parser itself
        raise YamlFileError(f"nested more than {MAX_NESTING} levels deep") from None
    except yaml.YAMLError as exc:
        # PyYAML's messages span lines; rtcheck's errors are one line.
        raise YamlFileError(f"not valid YAML ({' '.join(str(exc).split())})") from None
