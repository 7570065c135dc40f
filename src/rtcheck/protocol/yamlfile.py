"""Reading the YAML files users write (protocols, map files), within bounds.

Protocol and map files are small tables: rtcheck reads them with PyYAML's safe loader (libyaml's
C parser where PyYAML has it), refuses a file larger than :data:`~rtcheck.caps.YAML_BYTES`, and
refuses anchors and aliases, which such tables do not need and which let a few lines expand
into gigabytes (an alias bomb), and nesting deeper than such tables need. Only regular files
are read.
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


#: libyaml's parser where PyYAML was built with it (its wheels are), else PyYAML's own: the
#: same documents, ten times faster to read.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _refuse_anchors_and_depth(data: bytes | str) -> None:
    """Read the text's events once (no document is built) and refuse an alias, an anchor, or
    nesting deeper than :data:`MAX_NESTING`, before anything is composed."""
    depth = 0
    for event in yaml.parse(data, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            why = "aliases (*name) are not allowed in rtcheck's files"
        elif getattr(event, "anchor", None):
            why = "anchors (&name) are not allowed in rtcheck's files"
        elif isinstance(event, _OPEN) and depth >= MAX_NESTING:
            why = f"nested more than {MAX_NESTING} levels deep"
        else:
            depth += isinstance(event, _OPEN) - isinstance(event, _CLOSE)
            continue
        mark: Any = event.start_mark  # libyaml's own Mark where its parser read the text
        raise yaml.composer.ComposerError(None, None, why, mark)


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
        _refuse_anchors_and_depth(data)
        return yaml.load(data, Loader=_LOADER)  # noqa: S506 - a safe loader
    except RecursionError:  # flow-style nesting ("[[[[...") recurses in PyYAML's own parser
        raise YamlFileError(f"nested more than {MAX_NESTING} levels deep") from None
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's scanner stops at 1000 flow levels
            raise YamlFileError(f"nested more than {MAX_NESTING} levels deep") from None
        # PyYAML's messages span lines; rtcheck's errors are one line.
        raise YamlFileError(f"not valid YAML ({' '.join(str(exc).split())})") from None
