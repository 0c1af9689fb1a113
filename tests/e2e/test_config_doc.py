# End to end: docs/config.md against the configuration schema, through tools/config_doc.py
# MIT license; Copyright (c) 2026 the vehicle terminal firmware authors
#
# The expected values come from DEFAULTS and RULES dumped by the unix port,
# not from the tool, and each mutation of a copy of the document must be
# reported with exactly one message.

import json
import re
import subprocess
import sys

import pytest

from conftest import REPO, micropython_bin

TOOL = REPO / "tools" / "config_doc.py"
DOC = REPO / "docs" / "config.md"
CONFIG = REPO / "firmware" / "defaults.py"
CHECKS = REPO / "firmware" / "checks.py"

_DUMP = """\
import sys
sys.path.insert(0, {repo!r})
import json
from firmware import checks, config, defaults
print(json.dumps({{"defaults": defaults.DEFAULTS, "rules": {{r[0]: r[1:] for r in checks.rules()}}}}))
"""

# The probe CRC check imports drivers.ds18b20, which needs the onewire module:
# the simulated one of tools/sim on the unix port.
_VALIDATE = """\
import sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {repo!r} + "/tools/sim")
import json
from firmware import config, defaults
with open({path!r}) as f:
    examples = json.load(f)
print(json.dumps([config.validate(config.merge(defaults.DEFAULTS, e)) for e in examples]))
"""


def run_tool(*args):
    proc = subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def run_micropython(code):
    proc = subprocess.run([micropython_bin(), "-c", code], cwd=str(REPO), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr or proc.stdout
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def schema():
    """Return DEFAULTS and RULES as the firmware loads them under the unix port."""
    return run_micropython(_DUMP.format(repo=str(REPO)))


def default_of(schema, key):
    value = schema["defaults"]
    for part in key.split("."):
        value = value[part]
    return value


def cells_of(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def row_index(lines, key):
    found = [i for i, line in enumerate(lines) if line.startswith("| `%s` |" % key)]
    assert len(found) == 1, "docs/config.md has %d rows for %s" % (len(found), key)
    return found[0]


def with_cell(line, column, text):
    cells = cells_of(line)
    cells[column] = text
    return "| " + " | ".join(cells) + " |"


# ---- the real document --------------------------------------------------------


def test_reference_matches_code():
    rc, out, err = run_tool("check")
    assert rc == 0, err
    assert err == ""
    assert "docs/config.md matches firmware/defaults.py and firmware/checks.py" in out


def test_micropython_loader_agrees():
    rc, out, err = run_tool("check", "--loader", "micropython")
    assert rc == 0, err
    assert err == ""


def test_every_rule_key_has_row(schema):
    # Counted here without the tool's parser: one row per RULES key in the
    # key tables, and no other row there.
    keys = []
    in_key_table = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| key | type | default |"):
            in_key_table = True
        elif not line.startswith("|"):
            in_key_table = False
        elif in_key_table and line.startswith("| `"):
            keys.append(cells_of(line)[0].strip("`"))
    assert sorted(keys) == sorted(schema["rules"])


def test_rows_show_code_defaults(schema):
    # Default cells are the JSON text of DEFAULTS, in backticks.
    lines = DOC.read_text(encoding="utf-8").splitlines()
    for key in schema["rules"]:
        cells = cells_of(lines[row_index(lines, key)])
        assert json.loads(cells[2].strip("`")) == default_of(schema, key), key


# ---- mutations of a copy ----------------------------------------------------------


def _mutate_default(lines, schema):
    i = row_index(lines, "alarm.delay_s")
    lines[i] = with_cell(lines[i], 2, "`12345`")
    return "alarm.delay_s default is 12345, the code says %s" % json.dumps(default_of(schema, "alarm.delay_s"))


def _mutate_default_backticks(lines, schema):
    i = row_index(lines, "interval_s")
    text = json.dumps(default_of(schema, "interval_s"))
    lines[i] = with_cell(lines[i], 2, text)
    return "interval_s default is %s, the code formatting is `%s`" % (text, text)


def _mutate_range(lines, schema):
    i = row_index(lines, "mqtt.port")
    lines[i] = with_cell(lines[i], 3, "`1..99`")
    _, lo, hi = schema["rules"]["mqtt.port"]
    return "mqtt.port range / allowed is 1..99, the code says %d..%d" % (lo, hi)


def _mutate_type(lines, schema):
    i = row_index(lines, "dht.enabled")
    lines[i] = with_cell(lines[i], 1, "integer")
    assert schema["rules"]["dht.enabled"][0] == "bool"
    return "dht.enabled type is integer, the code says boolean"


def _mutate_unit(lines, schema):
    i = row_index(lines, "route.width_m")
    lines[i] = with_cell(lines[i], 4, "km")
    return "route.width_m unit is km, the code says m"


def _mutate_missing_row(lines, schema):
    del lines[row_index(lines, "mqtt.window")]
    return "mqtt.window has no row (add it with `python tools/config_doc.py table --write`)"


def _mutate_extra_row(lines, schema):
    i = row_index(lines, "alarm.stop_s")
    lines.insert(i + 1, "| `alarm.colour_s` | integer | `0` | `0..9` | s | A key that the code does not have. |")
    return "alarm.colour_s has a row (line %d) but the code has no such key" % (i + 2)


def _mutate_duplicate_row(lines, schema):
    i = row_index(lines, "gnss.baud")
    lines.insert(i + 1, lines[i])
    return "gnss.baud has 2 rows (lines %d, %d) instead of one" % (i + 1, i + 2)


def _mutate_empty_meaning(lines, schema):
    i = row_index(lines, "wifi.ssid")
    lines[i] = with_cell(lines[i], 5, "")
    return "wifi.ssid meaning is empty (line %d)" % (i + 1)


def _mutate_wrong_table(lines, schema):
    row = lines.pop(row_index(lines, "spool.dir"))
    i = row_index(lines, "log.file")
    lines.insert(i + 1, row)
    return "spool.dir is in the log table (line %d) but belongs in the spool table" % (i + 2)


MUTATIONS = [
    _mutate_default,
    _mutate_default_backticks,
    _mutate_range,
    _mutate_type,
    _mutate_unit,
    _mutate_missing_row,
    _mutate_extra_row,
    _mutate_duplicate_row,
    _mutate_empty_meaning,
    _mutate_wrong_table,
]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=[m.__name__[len("_mutate_"):] for m in MUTATIONS])
def test_check_reports_mutation(tmp_path, schema, mutate):
    lines = DOC.read_text(encoding="utf-8").splitlines()
    expected = mutate(lines, schema)
    copy = tmp_path / "config.md"
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")

    rc, out, err = run_tool("check", "--doc", str(copy))

    assert rc == 1
    assert err.splitlines() == ["config_doc: %s: %s" % (copy, expected)]
    assert out == ""


def test_check_reports_all_mutations_at_once(tmp_path, schema):
    lines = DOC.read_text(encoding="utf-8").splitlines()
    # Line numbers in the messages shift with later edits, so compare the keys only.
    keys = set()
    for mutate in MUTATIONS:
        keys.add(mutate(lines, schema).split(" ")[0])
    copy = tmp_path / "config.md"
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")

    rc, out, err = run_tool("check", "--doc", str(copy))

    assert rc == 1
    prefix = "config_doc: %s: " % copy
    messages = err.splitlines()
    assert all(m.startswith(prefix) for m in messages), err
    assert {m[len(prefix):].split(" ")[0] for m in messages} == keys
    assert len(messages) == len(MUTATIONS)


def test_missing_document_is_an_error(tmp_path):
    rc, out, err = run_tool("check", "--doc", str(tmp_path / "absent.md"))
    assert rc == 1
    assert err.startswith("config_doc: cannot read %s" % (tmp_path / "absent.md"))


# ---- regenerating the tables ----------------------------------------------------


def test_table_write_keeps_unchanged_doc(tmp_path):
    copy = tmp_path / "config.md"
    copy.write_text(DOC.read_text(encoding="utf-8"), encoding="utf-8")

    rc, out, err = run_tool("table", "--write", "--doc", str(copy))

    assert rc == 0, err
    assert copy.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")


def _changed_config(tmp_path, schema):
    # Copies of firmware/defaults.py with another alarm.delay_s default and one new
    # key, and of firmware/checks.py with the rule of the new key.
    text = CONFIG.read_text(encoding="utf-8")
    old_delay = default_of(schema, "alarm.delay_s")
    new_delay = old_delay + 7
    text, n = re.subn(r'"delay_s": %d,' % old_delay, '"delay_s": %d,\n        "hold_test_s": 5,' % new_delay, text,
                      count=1)
    assert n == 1
    path = tmp_path / "defaults.py"
    path.write_text(text, encoding="utf-8")
    text, n = re.subn(r'(\nalarm\.delay_s [^\n]*)', '\\1\nalarm.hold_test_s int 1 9',
                      CHECKS.read_text(encoding="utf-8"), count=1)
    assert n == 1
    rules_path = tmp_path / "checks.py"
    rules_path.write_text(text, encoding="utf-8")
    return path, rules_path, new_delay


@pytest.mark.parametrize("loader", ["cpython", "micropython"])
def test_table_write_after_code_change(tmp_path, schema, loader):
    config_copy, rules_copy, new_delay = _changed_config(tmp_path, schema)
    doc_copy = tmp_path / "config.md"
    before = DOC.read_text(encoding="utf-8").splitlines()
    doc_copy.write_text("\n".join(before) + "\n", encoding="utf-8")

    rc, out, err = run_tool("table", "--write", "--doc", str(doc_copy), "--config", str(config_copy),
                            "--rules", str(rules_copy),
                            "--loader", loader)
    assert rc == 0, err
    after = doc_copy.read_text(encoding="utf-8").splitlines()

    # The delay row has the new default and keeps its meaning.
    old_row = cells_of(before[row_index(before, "alarm.delay_s")])
    new_row = cells_of(after[row_index(after, "alarm.delay_s")])
    assert new_row[2] == "`%d`" % new_delay
    assert new_row[5] == old_row[5]
    # The new key follows alarm.delay_s, as in RULES, with an empty meaning.
    i = row_index(after, "alarm.hold_test_s")
    assert after[i] == "| `alarm.hold_test_s` | integer | `5` | `1..9` | s |  |"
    assert i == row_index(after, "alarm.delay_s") + 1
    # Everything else is unchanged.
    assert len(after) == len(before) + 1
    del after[i]
    changed = [n for n in range(len(before)) if before[n] != after[n]]
    assert changed == [row_index(before, "alarm.delay_s")]

    rc, out, err = run_tool("check", "--doc", str(doc_copy), "--config", str(config_copy), "--rules", str(rules_copy),
                            "--loader", loader)
    assert rc == 1
    assert err.splitlines() == ["config_doc: %s: alarm.hold_test_s meaning is empty (line %d)" % (doc_copy, i + 1)]


# ---- the examples ------------------------------------------------------------------


def _flat_keys(example, rules):
    found = {}
    for key in rules:
        value = example
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            found[key] = value
    return found


def test_examples_are_valid_and_minimal(tmp_path, schema):
    text = DOC.read_text(encoding="utf-8")
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]
    assert len(examples) == 2

    path = tmp_path / "examples.json"
    path.write_text(json.dumps(examples), encoding="utf-8")
    errors = run_micropython(_VALIDATE.format(repo=str(REPO), path=str(path)))
    assert errors == [[], []]

    # Section 8 states that the examples contain only keys that differ from the defaults.
    for example in examples:
        for key, value in _flat_keys(example, schema["rules"]).items():
            assert value != default_of(schema, key), "%s: %s repeats the default" % (example["device_id"], key)
