"""Helpers building small prefixes under ``tmp_path`` for the asset tests."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path


def write(root: Path, relative: str, content) -> Path:
    """Write ``content`` (a JSON-able object or text) at ``root/relative``."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(content, (str, bytes)):
        content = json.dumps(content, indent=4)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def add_library(root: Path, name: str, uses=None, code="", **extra) -> Path:
    declaration = {"language": "python", **extra}
    if uses is not None:
        declaration["uses"] = uses
    write(root, f"libraries/{name}.json", declaration)
    return write(root, f"libraries/{name}.py", textwrap.dedent(code))


def add_dataformat(root: Path, name: str, declaration: dict) -> Path:
    return write(root, f"dataformats/{name}.json", declaration)


def add_algorithm(root: Path, name: str, declaration: dict, code: str = "") -> Path:
    write(root, f"algorithms/{name}.json", declaration)
    language = declaration.get("language", "python")
    extension = {"python": ".py", "cxx": ".so", "matlab": ".m", "r": ".r", "unknown": ""}
    return write(root, f"algorithms/{name}{extension.get(language, '')}", textwrap.dedent(code))


def files(root: Path) -> list[str]:
    """Every file under ``root``, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def edit_json(path, change) -> None:
    """Load the JSON file ``path``, apply ``change(data)`` to it in place, write it back."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
