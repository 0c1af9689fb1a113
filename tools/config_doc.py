# Configuration reference check: the key tables of docs/config.md against DEFAULTS (firmware/defaults.py) and RULES (firmware/checks.py)
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
"""Keep the tables of docs/config.md equal to the configuration schema in the code.

    python tools/config_doc.py check [--doc FILE] [--config FILE] [--rules FILE] [--loader auto|cpython|micropython]
    python tools/config_doc.py table [--doc FILE] [--config FILE] [--rules FILE] [--loader ...] [--write]

Every table of FILE whose header is `| key | type | default | range / allowed |
unit | meaning |` is a key table, one per section. `check` requires exactly one
row per RULES key and no row for a key the code lacks. Each row must be in the
table of its own section, with the type, default, range and unit cells written
exactly as this tool formats them from the code. The meaning cell is prose and
must not be empty. Each difference is printed on stderr as "config_doc: FILE: ...",
and the exit status is then 1.

`table` prints the key tables generated from the code, with the meaning cells
taken from FILE (empty for a key that has no row yet). With --write it
replaces the tables in FILE instead, so after a change to the code the
document is regenerated without losing its prose.
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DOC = REPO / "docs" / "config.md"
DEFAULT_CONFIG = REPO / "firmware" / "defaults.py"
DEFAULT_RULES = REPO / "firmware" / "checks.py"

_PROG = "config_doc"
_MICROPYTHON_TIMEOUT_S = 30

HEADER = ("key", "type", "default", "range / allowed", "unit", "meaning")
_HEADER_LINE = "| " + " | ".join(HEADER) + " |"
_SEPARATOR_LINE = "|" + " --- |" * len(HEADER)

# Name of the section of the keys without a dot (device_id, interval_s, probes, ...).
TOP_SECTION = "top-level"

# Unit of a key, from its last name part. Suffixes are tried first, so
# "hysteresis_c" is in °C and "temp_low" (no unit suffix) falls to the prefixes.
_UNIT_SUFFIXES = (
    ("_ms", "ms"),
    ("_s", "s"),
    ("_kmh", "km/h"),
    ("_c", "°C"),
    ("_rh", "%RH"),
    ("_m", "m"),
    ("_bytes", "bytes"),
    ("_kib", "KiB"),
)
_UNIT_PREFIXES = (("temp_", "°C"), ("rh_", "%RH"))

_TYPE_NAMES = {
    "int": "integer",
    "num": "number",
    "num?": "number or null",
    "bool": "boolean",
    "str": "string",
    "hex": "hex string",
    "probes": "list of probes",
    "zones": "list of zones",
    "route": "list of [lat, lon]",
}

# Code that prints the schema as JSON under the unix port. The rules come as a
# list, in table order; the port's dicts do not keep insertion order.
_MP_DUMP = """\
import sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {rules_folder!r})
sys.path.insert(0, {folder!r})
import json
import {module} as c
import {rules_module} as r
print(json.dumps({{"defaults": c.DEFAULTS, "rules": list(r.rules()), "secrets": getattr(r, "SECRET_KEYS", getattr(c, "SECRET_KEYS", []))}}))
"""


class CommandError(Exception):
    pass


# ---- the schema from the code -------------------------------------------------


class Schema:
    """RULES (key -> (type, min, max), in source order) and SECRET_KEYS of checks.py, DEFAULTS of defaults.py."""

    def __init__(self, rules, defaults, secrets, source):
        self.rules = rules
        self.defaults = defaults
        self.secrets = tuple(secrets)
        self.source = source

    def default(self, key):
        """Return the default of a dotted key, or raise CommandError when DEFAULTS lacks it."""
        value = self.defaults
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise CommandError("%s: RULES has %s but DEFAULTS has no value for it" % (self.source, key))
            value = value[part]
        return value

    def default_leaves(self):
        """Return the dotted keys of DEFAULTS, split into sections the way firmware.config flattens them."""
        leaves = []
        self._collect(self.defaults, "", leaves)
        return leaves

    def _collect(self, d, prefix, leaves):
        for name in d:
            key = prefix + name
            value = d[name]
            nested = any(rule.startswith(key + ".") for rule in self.rules)
            if isinstance(value, dict) and key not in self.rules and nested:
                self._collect(value, key + ".", leaves)
            else:
                leaves.append(key)


def load_schema(config_path=DEFAULT_CONFIG, loader="auto", rules_path=DEFAULT_RULES):
    """Load DEFAULTS from config_path, and RULES and SECRET_KEYS (which checks.py imports) from rules_path.

    loader "cpython" imports the module into this interpreter, "micropython"
    runs it under the unix port and reads a JSON dump, and "auto" tries
    CPython first, then the unix port.
    """
    config_path = Path(config_path)
    rules_path = Path(rules_path)
    for path in (config_path, rules_path):
        if not path.is_file():
            raise CommandError("%s not found" % path)
    if loader == "micropython":
        return _load_micropython(config_path, rules_path)
    try:
        return _load_cpython(config_path, rules_path)
    except CommandError as e:
        if loader == "cpython":
            raise
        cpython_error = e
    try:
        return _load_micropython(config_path, rules_path)
    except CommandError as e:
        raise CommandError("%s; %s" % (cpython_error, e))


def _import_cpython(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        # Any failure at import time (a MicroPython-only module, time.ticks_ms, ...)
        # means this file needs the unix port.
        raise CommandError("importing %s under CPython failed (%s: %s)" % (path, type(e).__name__, e))
    return module


def _load_cpython(config_path, rules_path):
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    # Write no .pyc next to the firmware sources, which mpy-cross compiles for the device.
    sys.dont_write_bytecode = True
    module = _import_cpython(config_path, "_config_doc_defaults")
    rules_module = _import_cpython(rules_path, "_config_doc_rules")
    rules = {}
    for key, kind, lo, hi in rules_module.rules():
        rules[key] = (_normalise_kind(kind), lo, hi)
    secrets = getattr(rules_module, "SECRET_KEYS", getattr(module, "SECRET_KEYS", ()))
    return Schema(rules, module.DEFAULTS, secrets, _sources(config_path, rules_path))


def micropython_command():
    """Return the unix-port micropython of the repository's venv, or the one on PATH."""
    exe = REPO / ".venv" / "bin" / "micropython"
    if exe.exists():
        return str(exe)
    found = shutil.which("micropython")
    if not found:
        raise CommandError("micropython not found: run `make venv` (pip install -r requirements.txt)")
    return found


def _load_micropython(config_path, rules_path):
    code = _MP_DUMP.format(repo=str(REPO), folder=str(config_path.parent), module=config_path.stem,
                           rules_folder=str(rules_path.parent), rules_module=rules_path.stem)
    try:
        proc = subprocess.run([micropython_command(), "-c", code], cwd=str(REPO), capture_output=True,
                              text=True, timeout=_MICROPYTHON_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CommandError("micropython timed out after %d s loading %s" % (_MICROPYTHON_TIMEOUT_S, config_path))
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise CommandError("micropython failed to load %s: %s" % (config_path, lines[-1] if lines else "no output"))
    try:
        dump = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CommandError("micropython printed no JSON schema for %s: %r" % (config_path, proc.stdout[-200:]))
    # rules() gives (key, type, min, max) tuples, which JSON turns into lists.
    rules = {}
    for key, kind, lo, hi in dump["rules"]:
        rules[key] = (_normalise_kind(kind), lo, hi)
    return Schema(rules, dump["defaults"], dump["secrets"], _sources(config_path, rules_path))


def _sources(config_path, rules_path):
    return "%s and %s" % (_display_path(config_path), _display_path(rules_path))


def _normalise_kind(kind):
    # A list of allowed strings (a tuple after JSON) becomes a tuple again.
    if isinstance(kind, (list, tuple)):
        return tuple(kind)
    return kind


def _display_path(path):
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


# ---- one formatting of every generated cell ---------------------------------


def section_of(key):
    return key.split(".")[0] if "." in key else TOP_SECTION


def _code(text):
    return "`%s`" % text


def _json(value):
    return json.dumps(value, ensure_ascii=False)


def format_type(kind, secret=False):
    if isinstance(kind, tuple):
        text = "string"
    elif kind in _TYPE_NAMES:
        text = _TYPE_NAMES[kind]
    else:
        raise CommandError("unknown rule type %r in RULES: add its formatting to tools/config_doc.py" % (kind,))
    return text + " (secret)" if secret else text


def format_default(value):
    return _code(_json(value))


def format_range(kind, lo, hi):
    if isinstance(kind, tuple):
        return " / ".join(_code(v) for v in kind)
    if kind == "bool":
        return "`true` / `false`"
    span = _code("%s..%s" % (_json(lo), _json(hi)))
    if kind in ("int", "num", "num?"):
        return span
    if kind == "str":
        return "length " + span
    if kind == "hex":
        return "empty, or %s hex digits, an even number" % span
    if kind == "probes":
        return span + " probes"
    if kind == "zones":
        return span + " zones"
    if kind == "route":
        return span + " points"
    raise CommandError("unknown rule type %r in RULES: add its formatting to tools/config_doc.py" % (kind,))


def unit_of(key):
    name = key.rsplit(".", 1)[-1]
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    for prefix, unit in _UNIT_PREFIXES:
        if name.startswith(prefix):
            return unit
    return ""


def generated_cells(schema, key):
    """Return the type, default, range and unit cells of a key, as the document must contain them."""
    kind, lo, hi = schema.rules[key]
    return {
        "type": format_type(kind, key in schema.secrets),
        "default": format_default(schema.default(key)),
        "range / allowed": format_range(kind, lo, hi),
        "unit": unit_of(key),
    }


def _escape_cell(text):
    return text.replace("|", "\\|")


def format_row(cells):
    return "| " + " | ".join(cells) + " |"


# ---- the key tables of the document -----------------------------------------


class Row:
    def __init__(self, line_no, key, cells):
        self.line_no = line_no
        self.key = key
        self.cells = cells  # column name -> cell text, stripped


class Table:
    def __init__(self, start, end, rows):
        self.start = start  # index of the header line
        self.end = end  # index after the last row
        self.rows = rows

    def section(self):
        """Return the section of most rows, so that one misplaced row is reported, not the rest."""
        counts = {}
        for row in self.rows:
            name = section_of(row.key)
            counts[name] = counts.get(name, 0) + 1
        best = None
        for name in counts:
            if best is None or counts[name] > counts[best]:
                best = name
        return best


def split_cells(line):
    """Split a Markdown table line into stripped cells. A backslash-escaped | stays in its cell."""
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    cells = []
    current = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] == "|":
            current += "\\|"
            i += 2
            continue
        if c == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += c
        i += 1
    cells.append(current.strip())
    return cells


def parse_tables(lines, problems):
    """Return the key tables of a document, and append a message for each malformed row to problems."""
    tables = []
    i = 0
    while i < len(lines):
        if not lines[i].strip().startswith("|") or tuple(split_cells(lines[i])) != HEADER:
            i += 1
            continue
        start = i
        i += 2  # the header and its --- separator
        rows = []
        while i < len(lines) and lines[i].strip().startswith("|"):
            row = _parse_row(i + 1, split_cells(lines[i]), problems)
            if row is not None:
                rows.append(row)
            i += 1
        tables.append(Table(start, i, rows))
    return tables


def _parse_row(line_no, cells, problems):
    if len(cells) != len(HEADER):
        problems.append("line %d: a key table row needs %d cells, got %d" % (line_no, len(HEADER), len(cells)))
        return None
    key_cell = cells[0]
    if len(key_cell) < 3 or not (key_cell.startswith("`") and key_cell.endswith("`")):
        problems.append("line %d: the key cell must be a key in backticks, like `alarm.delay_s`, got %r"
                        % (line_no, key_cell))
        return None
    return Row(line_no, key_cell[1:-1], dict(zip(HEADER, cells)))


def read_doc(doc_path):
    try:
        return Path(doc_path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CommandError("cannot read %s: %s" % (doc_path, e.strerror or e))


# ---- check ----------------------------------------------------------------------


def _shown(cell):
    return cell.replace("`", "") or "empty"


def compare(schema, tables):
    """Return one message per difference between the key tables and the schema."""
    problems = []
    rows_by_key = {}
    for table in tables:
        for row in table.rows:
            rows_by_key.setdefault(row.key, []).append((table, row))

    for key in schema.default_leaves():
        if key not in schema.rules:
            problems.append("%s: DEFAULTS has %s but RULES has no rule for it" % (schema.source, key))

    for key in schema.rules:
        found = rows_by_key.get(key)
        if not found:
            problems.append("%s has no row (add it with `python tools/config_doc.py table --write`)" % key)
            continue
        if len(found) > 1:
            lines = ", ".join(str(row.line_no) for _, row in found)
            problems.append("%s has %d rows (lines %s) instead of one" % (key, len(found), lines))
        table, row = found[0]
        problems.extend(_compare_row(schema, key, table, row))

    for key in rows_by_key:
        if key not in schema.rules:
            lines = ", ".join(str(row.line_no) for _, row in rows_by_key[key])
            problems.append("%s has a row (line %s) but the code has no such key" % (key, lines))
    return problems


def _compare_row(schema, key, table, row):
    problems = []
    expected = generated_cells(schema, key)
    for column in ("type", "default", "range / allowed", "unit"):
        have = row.cells[column]
        want = _escape_cell(expected[column])
        if have == want:
            continue
        if _shown(have) == _shown(want):
            # Only the backticks differ: show the cells as written.
            problems.append("%s %s is %s, the code formatting is %s" % (key, column, have, want))
        else:
            problems.append("%s %s is %s, the code says %s" % (key, column, _shown(have), _shown(want)))
    if not row.cells["meaning"]:
        problems.append("%s meaning is empty (line %d)" % (key, row.line_no))
    if table.section() != section_of(key):
        problems.append("%s is in the %s table (line %d) but belongs in the %s table"
                        % (key, table.section(), row.line_no, section_of(key)))
    return problems


def do_check(args):
    schema = load_schema(args.config, args.loader, args.rules)
    lines = read_doc(args.doc)
    problems = []
    tables = parse_tables(lines, problems)
    if not tables:
        problems.append("no key table found (a table with the header %s)" % _HEADER_LINE)
    problems.extend(compare(schema, tables))
    if problems:
        sys.stdout.flush()
        for problem in problems:
            print("%s: %s: %s" % (_PROG, _display_path(args.doc), problem), file=sys.stderr)
        return 1
    print("%s: %s matches %s (%d keys in %d tables)"
          % (_PROG, _display_path(args.doc), schema.source, len(schema.rules), len(tables)))
    return 0


# ---- table --------------------------------------------------------------------


def generate_tables(schema, tables):
    """Return section -> table lines generated from the schema, with the meanings of the existing rows."""
    meanings = {}
    for table in tables:
        for row in table.rows:
            meanings.setdefault(row.key, row.cells["meaning"])
    by_section = {}
    for key in schema.rules:
        cells = generated_cells(schema, key)
        row = [_code(key)] + [_escape_cell(cells[c]) for c in HEADER[1:5]] + [meanings.get(key, "")]
        by_section.setdefault(section_of(key), [_HEADER_LINE, _SEPARATOR_LINE]).append(format_row(row))
    return by_section


def do_table(args):
    schema = load_schema(args.config, args.loader, args.rules)
    # Without a document yet, the printed tables have empty meaning cells.
    lines = read_doc(args.doc) if args.write or os.path.exists(args.doc) else []
    problems = []
    tables = parse_tables(lines, problems)
    generated = generate_tables(schema, tables)
    if not args.write:
        print("\n\n".join("\n".join(table) for table in generated.values()))
        return 0

    if problems:
        raise CommandError("%s: malformed rows, fix them first: %s" % (_display_path(args.doc), "; ".join(problems)))
    seen = {}
    for table in tables:
        section = table.section()
        if section is None:
            raise CommandError("%s: the key table at line %d has no rows" % (_display_path(args.doc), table.start + 1))
        if section in seen:
            raise CommandError("%s: section %s has two tables (lines %d and %d) instead of one"
                               % (_display_path(args.doc), section, seen[section] + 1, table.start + 1))
        if section not in generated:
            raise CommandError("%s: the table at line %d is for section %s, which the code does not have"
                               % (_display_path(args.doc), table.start + 1, section))
        seen[section] = table.start
    missing = [s for s in generated if s not in seen]
    if missing:
        raise CommandError("%s: no table for section %s (copy it from the output of `python tools/config_doc.py table`)"
                           % (_display_path(args.doc), ", ".join(missing)))

    # Replace the tables from the last one up, so earlier line indexes stay valid.
    out = list(lines)
    for table in sorted(tables, key=lambda t: t.start, reverse=True):
        out[table.start:table.end] = generated[table.section()]
    _write_atomic(args.doc, "\n".join(out) + "\n")
    print("%s: rewrote %d tables in %s" % (_PROG, len(tables), _display_path(args.doc)))
    return 0


def _write_atomic(path, text):
    tmp = "%s.tmp" % path
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise CommandError("cannot write %s: %s" % (path, e.strerror or e))


# ---- command line ---------------------------------------------------------------


def _add_common(p):
    p.add_argument("--doc", default=str(DEFAULT_DOC), help="the reference to check (default docs/config.md)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG),
                   help="the module with DEFAULTS (default firmware/defaults.py)")
    p.add_argument("--rules", default=str(DEFAULT_RULES),
                   help="the module with RULES and SECRET_KEYS (default firmware/checks.py)")
    p.add_argument("--loader", choices=("auto", "cpython", "micropython"), default="auto",
                   help="how to load the module: import it here, run it under the unix port, "
                        "or try CPython first (default auto)")


def argparse_check(sub):
    p = sub.add_parser("check", help="compare the key tables of the reference with the code; exit 1 on a difference")
    _add_common(p)
    p.set_defaults(func=do_check)


def argparse_table(sub):
    p = sub.add_parser("table", help="print the key tables generated from the code, keeping the meaning cells")
    _add_common(p)
    p.add_argument("--write", action="store_true", help="replace the tables in the reference instead of printing them")
    p.set_defaults(func=do_table)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=_PROG, description="configuration reference check")
    sub = parser.add_subparsers(dest="command", required=True)
    argparse_check(sub)
    argparse_table(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CommandError as e:
        sys.stdout.flush()
        print("%s: %s" % (_PROG, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
