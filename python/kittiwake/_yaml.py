"""The YAML that conda environment files use: block mappings and lists, scalars, comments and
flow lists. The SDK is standard-library only, and conda files need no more than this."""

from ._errors import UserErrorException


def _scalar(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        body = text[1:-1]
        return body.replace("''", "'") if text[0] == "'" else body.encode().decode("unicode_escape")
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(part) for part in inner.split(",")] if inner else []
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    return text


def _strip_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def loads(text, source="<yaml>"):
    """Parses the YAML subset of conda environment files into dicts, lists and strings."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise UserErrorException("%s line %d: indent with spaces, not tabs" % (source, number))
        lines.append((len(line) - len(line.lstrip()), line.strip(), number))
    value, end = _block(lines, 0, 0, source)
    if end != len(lines):
        raise UserErrorException("%s line %d: unexpected indentation" % (source, lines[end][2]))
    return value


def _block(lines, i, indent, source):
    if i >= len(lines):
        return None, i
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        return _list(lines, i, lines[i][0], source)
    return _map(lines, i, lines[i][0], source)


def _list(lines, i, indent, source):
    out = []
    while i < len(lines) and lines[i][0] == indent and (lines[i][1] == "-" or lines[i][1].startswith("- ")):
        item = lines[i][1][1:].strip()
        i += 1
        if not item:
            value, i = _block(lines, i, indent + 1, source) if i < len(lines) and lines[i][0] > indent else (None, i)
            out.append(value)
        elif _is_key(item):
            # "- key: value" starts a mapping whose further keys are indented under the item.
            key, rest = item.split(":", 1)
            entry = {}
            if rest.strip():
                entry[key.strip()] = _scalar(rest)
            elif i < len(lines) and lines[i][0] > indent:
                entry[key.strip()], i = _block(lines, i, lines[i][0], source)
            else:
                entry[key.strip()] = None
            if i < len(lines) and lines[i][0] > indent and not lines[i][1].startswith("- "):
                more, i = _map(lines, i, lines[i][0], source)
                entry.update(more)
            out.append(entry)
        else:
            out.append(_scalar(item))
    return out, i


def _is_key(text):
    if text[:1] in "'\"[":
        return False
    head, sep, rest = text.partition(":")
    return bool(sep) and (rest == "" or rest.startswith(" ")) and " " not in head.strip()


def _map(lines, i, indent, source):
    out = {}
    while i < len(lines) and lines[i][0] == indent:
        text, number = lines[i][1], lines[i][2]
        if not _is_key(text):
            raise UserErrorException("%s line %d: expected 'key: value', got %r" % (source, number, text))
        key, rest = text.split(":", 1)
        i += 1
        if rest.strip():
            out[key.strip()] = _scalar(rest)
        elif i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))):
            out[key.strip()], i = _block(lines, i, lines[i][0], source)
        else:
            out[key.strip()] = None
    return out, i


def dumps(value, indent=0):
    """Writes dicts, lists and scalars as block YAML."""
    pad = " " * indent
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append("%s%s:" % (pad, key))
                out.append(dumps(item, indent + 2))
            else:
                out.append("%s%s: %s" % (pad, key, _quote(item)))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                first, *rest = list(item.items())
                key, sub = first
                if isinstance(sub, (dict, list)) and sub:
                    out.append("%s- %s:" % (pad, key))
                    out.append(dumps(sub, indent + 4))
                else:
                    out.append("%s- %s: %s" % (pad, key, _quote(sub)))
                if rest:
                    out.append(dumps(dict(rest), indent + 2))
            else:
                out.append("%s- %s" % (pad, _quote(item)))
    return "\n".join(line for line in out if line)


def _quote(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[]"
    text = str(v)
    if text == "" or text[0] in "-?:,[]{}#&*!|>'\"%@`" or ": " in text or " #" in text:
        return "'%s'" % text.replace("'", "''")
    return text
