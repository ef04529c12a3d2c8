"""Writes folders of small files for tests."""

import os
import textwrap


def write_tree(root, files):
    """Writes ``{relative path: text}`` below ``root`` (text dedented) and returns ``root``."""
    for rel, text in files.items():
        path = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
    return str(root)
