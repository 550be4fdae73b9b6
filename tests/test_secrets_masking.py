"""Secrets never leak: not in events, ``--json``, the live view, trace output, outputs or the state.

The CLI tests run ``python -m orchestrator`` in a subprocess with a real entry-point
distribution (``orchestrator-leaky``, written on the fly like in test_plugin_loading):
its hooks print the secret they are given in every form a plugin might (raw, ``repr``,
JSON, line by line, inside an exception), which is exactly what must never come out.

The forms a test looks for are computed here, independently of the masker.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testenv.dists import write_distribution

from orchestrator.engine.events import MASK, Masker

pytestmark = pytest.mark.integration

# Both quote kinds, a backslash, non-ASCII and newlines: a PEM-like key.
PEM = "-----BEGIN TEST KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\nq'u\"o\\te-\u00e9-\u00fc-\u20ac\n-----END TEST KEY-----"
# Only a single quote: repr() picks double quotes for it, single quotes inside a larger text.
PASSWORD = "pa'ss-w\u00f6rd-42"

LEAKY = '''
import json

from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"leaky.Thing": {
        "derived_from": "orchestrator.nodes.Root",
        "properties": {"password": {"type": "string"},
                       "copy": {"type": "boolean", "default": False},
                       "fail": {"type": "boolean", "default": False}}}}}


@hookimpl
def create(ctx):
    pw = ctx.node.properties["password"]
    log = ctx.logger.info
    log("raw %s", pw)
    log("repr %r", pw)
    log("in a dict %r", {"password": pw})
    log("embedded %r", 'he said "' + pw + '"')
    log("json %s", json.dumps({"password": pw}))
    log("json utf-8 %s", json.dumps({"password": pw}, ensure_ascii=False))
    for line in pw.splitlines():
        log("line %s | %r | %s", line, line, json.dumps(line))
    if ctx.node.properties["copy"]:
        ctx.instance.runtime_properties["copied"] = pw
    if ctx.node.properties["fail"]:
        raise RuntimeError(f"login refused for {pw!r}")


@hookimpl
def delete(ctx):
    copied = ctx.instance.runtime_properties.get("copied")
    if copied:
        ctx.logger.info("deleting what %r opened", copied)
'''


def printed_forms(secret: str) -> set[str]:
    """What a secret looks like once printed: raw, repr (both quote styles), JSON, its lines."""
    forms: set[str] = set()
    lines = [part for line in secret.splitlines() for part in (line, line.strip()) if len(line.strip()) >= 3]
    for text in [secret, *lines]:
        forms |= {text, repr(text)[1:-1], json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1],
                  repr(text.encode())[2:-1]}
        forms.add(repr("'\"" + text)[4:-1])  # single-quote style, as inside a text holding both quotes
        if '"' not in text:
            forms.add(repr("'" + text)[2:-1])  # double-quote style
    return forms


def leaks(text: str | bytes, *secrets: str) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return sorted(f for s in secrets for f in printed_forms(s) if f in text)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_distribution(tmp_path_factory.mktemp("site"), "orchestrator-leaky", {"leaky": "sec_leaky"},
                              {"sec_leaky.py": LEAKY})


def environ(site: Path, **env: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environ.get("PYTHONPATH")]))
    environ["ORCHESTRATOR_PLUGINS"] = "leaky"
    environ.update(env)
    return environ


def cli(site: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=cwd, env=environ(site, **env), timeout=120)


def secret_env(**values: str) -> dict[str, str]:
    return {f"ORCHESTRATOR_SECRET_{k.upper()}": v for k, v in values.items()}


TWO_THINGS = """
node_templates:
  key:
    type: leaky.Thing
    properties: {password: {get_secret: tls_key}, fail: true}
  login:
    type: leaky.Thing
    properties:
      password: {get_secret: db_password}
"""


# ---------------------------------------------------------------- the masker itself


@pytest.mark.parametrize("secret", [PEM, PASSWORD, "plain-secret", "tab\there", "\u00e9t\u00e9-\U0001f511-key",
                                    "  indented first line\n    and an indented second\n"])
def test_masker_masks_every_printed_form(secret: str) -> None:
    masker = Masker([secret])
    samples = [
        f"raw {secret} end",
        f"repr {secret!r}",
        f"dict {({'k': secret, 'q': chr(34)})!r}",
        f"embedded {('he said ' + chr(34) + secret + chr(34))!r}",
        f"embedded single {(chr(39) + secret)!r}",
        json.dumps({"k": secret}),
        json.dumps({"k": secret}, ensure_ascii=False),
        json.dumps(f"x {secret} y"),
        f"bytes {secret.encode()!r}",
        f"bytes in a text with both quotes {(chr(39) + chr(34) + secret).encode()!r}",
        *(f"line {line}!" for line in secret.splitlines()),
        *(f"stripped line {line.strip()}!" for line in secret.splitlines()),
    ]
    for text in samples:
        masked = masker(text)
        assert not leaks(masked, secret), (text, masked)
        assert MASK in masked


def test_masker_leaves_short_lines_and_other_text_alone() -> None:
    secret = "first-line-of-it\nab\nlast-line-of-it"
    masker = Masker([secret, "xy"])  # "xy" is too short to mask at all
    assert masker("ab xy first-line-of-it") == f"ab xy {MASK}"
    assert masker(f"[{secret}]") == f"[{MASK}]"
    assert masker("nothing to see") == "nothing to see"
    assert Masker()("text") == "text" and not Masker()


def test_masker_learns_new_secrets() -> None:
    masker = Masker(["alpha-secret"])
    masker.add(["beta-secret"])
    assert masker("alpha-secret beta-secret") == f"{MASK} {MASK}"


# ---------------------------------------------------------------- install: events, --json, state, summary


def test_secrets_with_quotes_newlines_and_non_ascii_never_leak(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text(TWO_THINGS)
    state = tmp_path / "state.db"
    env = secret_env(tls_key=PEM, db_password=PASSWORD)

    install = cli(site, "install", "bp.yaml", "--json", "--retries", "0", "--state", str(state), cwd=tmp_path,
                  **env)
    assert install.returncode == 1, install.stderr  # 'key' fails on purpose, with the key in the message
    events = cli(site, "events", "--state", str(state), cwd=tmp_path)
    events_json = cli(site, "events", "--json", "--state", str(state), cwd=tmp_path)

    messages = [json.loads(line)["message"] for line in install.stdout.splitlines()]
    assert any(m == f"raw {MASK}" for m in messages)
    assert any(m.startswith("create failed: RuntimeError: login refused for") for m in messages)
    for name, text in [("install --json", install.stdout), ("summary", install.stderr),
                       ("events", events.stdout), ("events --json", events_json.stdout)]:
        assert not leaks(text, PEM, PASSWORD), name
    raw_state = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert not leaks(raw_state, PEM, PASSWORD)


def test_the_live_view_shows_no_secret(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text(TWO_THINGS)
    env = environ(site, TERM="xterm", COLUMNS="200", LINES="50", **secret_env(tls_key=PEM, db_password=PASSWORD))
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "install", "bp.yaml", "--retries", "0",
                             "--state", str(tmp_path / "state.db")],
                            stdin=secondary, stdout=secondary, stderr=secondary, cwd=tmp_path, env=env)
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=30) == 1
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "wave 1" in screen and MASK in screen
    assert not leaks(screen, PEM, PASSWORD)


def test_trace_output_is_masked(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text(TWO_THINGS)

    proc = cli(site, "install", "bp.yaml", "--json", "--retries", "0", "--state", str(tmp_path / "state.db"),
               cwd=tmp_path, ORCHESTRATOR_TRACE_HOOKS="1", **secret_env(tls_key=PEM, db_password=PASSWORD))

    trace = [line for line in proc.stderr.splitlines() if line.startswith("[trace] create")]
    assert any(f"error RuntimeError: login refused for '{MASK}'" in line for line in trace), proc.stderr
    assert not leaks(proc.stderr, PEM, PASSWORD)


# ---------------------------------------------------------------- outputs

OUTPUTS = """
node_templates:
  thing:
    type: leaky.Thing
    properties:
      password: {get_secret: db_password}
      copy: true
outputs:
  password: {value: {get_secret: db_password}}
  url: {value: {concat: ["postgres://admin:", {get_secret: db_password}, "@db/app"]}}
  via_property: {value: {get_property: [thing, password]}}
  via_property_concat: {value: {concat: [{get_property: [thing, password]}, "!"]}}
  copied: {value: {get_attribute: [thing, copied]}}
  listed: {value: [{get_attribute: [thing, copied]}, plain]}
  plain: {value: hello}
"""


def test_outputs_mask_secrets_unless_asked_to_show_them(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text(OUTPUTS)
    state = str(tmp_path / "state.db")
    env = secret_env(db_password=PEM)
    assert cli(site, "install", "bp.yaml", "--state", state, cwd=tmp_path, **env).returncode == 0

    text = cli(site, "outputs", "--state", state, cwd=tmp_path, **env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        "password: <secret:db_password>",
        f"url: postgres://admin:{MASK}@db/app",
        "via_property: <secret:db_password>",
        f"via_property_concat: {MASK}!",
        f"copied: {MASK}",
        f"listed: ['{MASK}', 'plain']",
        "plain: hello",
    ]
    as_json = cli(site, "outputs", "--json", "--state", state, cwd=tmp_path, **env)
    assert json.loads(as_json.stdout) == {
        "password": "<secret:db_password>", "url": f"postgres://admin:{MASK}@db/app",
        "via_property": "<secret:db_password>", "via_property_concat": f"{MASK}!",
        "copied": MASK, "listed": [MASK, "plain"], "plain": "hello"}
    assert not leaks(text.stdout + as_json.stdout, PEM)

    shown = cli(site, "outputs", "--json", "--show-secrets", "--state", state, cwd=tmp_path, **env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "password": PEM, "url": f"postgres://admin:{PEM}@db/app", "via_property": PEM,
        "via_property_concat": f"{PEM}!", "copied": PEM, "listed": [PEM, "plain"], "plain": "hello"}


def test_a_runtime_property_copied_from_a_secret_stays_masked_without_the_secret(site: Path,
                                                                                 tmp_path: Path) -> None:
    """Once a plugin copied a secret into a runtime property, that value is known to be secret:
    outputs, events and later executions mask it even when the secret is no longer given."""
    (tmp_path / "bp.yaml").write_text(OUTPUTS)
    state = tmp_path / "state.db"
    assert cli(site, "install", "bp.yaml", "--state", str(state), cwd=tmp_path,
               **secret_env(db_password=PASSWORD)).returncode == 0
    import sqlite3

    with sqlite3.connect(state) as db:
        (keys,) = db.execute("SELECT secret_keys FROM instances").fetchone()
    assert json.loads(keys) == ["copied"]
    bare = cli(site, "outputs", "--json", "--state", str(state), cwd=tmp_path)  # no secret given now
    assert json.loads(bare.stdout)["copied"] == MASK and not leaks(bare.stdout, PASSWORD)
    shown = cli(site, "outputs", "--json", "--show-secrets", "--state", str(state), cwd=tmp_path)
    assert json.loads(shown.stdout)["copied"] == PASSWORD
    removed = cli(site, "uninstall", "--json", "--state", str(state), cwd=tmp_path)  # its delete logs the copy
    assert removed.returncode == 0, removed.stderr
    assert "deleting what" in removed.stdout and not leaks(removed.stdout + removed.stderr, PASSWORD)
    events = cli(site, "events", "--json", "--state", str(state), cwd=tmp_path)
    assert "deleting what" in events.stdout and not leaks(events.stdout, PASSWORD)


def test_outputs_name_a_missing_secret_instead_of_failing(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text(OUTPUTS.replace("copy: true", "copy: false"))
    state = str(tmp_path / "state.db")
    assert cli(site, "install", "bp.yaml", "--state", state, cwd=tmp_path,
               **secret_env(db_password="s3cret-value")).returncode == 0

    for extra in ([], ["--show-secrets"]):
        proc = cli(site, "outputs", "--json", *extra, "--state", state, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        values = json.loads(proc.stdout)
        assert values["password"] == "<secret:db_password unavailable>"
        assert values["url"] == "postgres://admin:<secret:db_password unavailable>@db/app"
        assert values["via_property"] == "<secret:db_password unavailable>"
        assert values["plain"] == "hello"


def test_outputs_help_explains_show_secrets(site: Path, tmp_path: Path) -> None:
    proc = cli(site, "outputs", "--help", cwd=tmp_path)
    assert "--show-secrets" in proc.stdout
    assert "<secret:NAME>" in " ".join(proc.stdout.split())


# ---------------------------------------------------------------- missing and short secrets


def position(text: str, needle: str, occurrence: int = 0) -> str:
    """``LINE:COL`` (1-based) of the n-th ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - text.rfind(chr(10), 0, index)}"


def test_a_missing_secret_is_reported_where_get_secret_is_used(site: Path, tmp_path: Path) -> None:
    main = ("imports: [more.yaml]\nnode_templates:\n  a:\n    type: leaky.Thing\n"
            "    properties:\n      password: {get_secret: db_password}\n")
    more = "node_templates:\n  b:\n    type: leaky.Thing\n    properties: {password: {get_secret: api_token}}\n"
    (tmp_path / "bp.yaml").write_text(main)
    (tmp_path / "more.yaml").write_text(more)

    proc = cli(site, "install", "bp.yaml", "--state", str(tmp_path / "state.db"), cwd=tmp_path)

    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"bp.yaml:{position(main, 'db_password')}: secret 'db_password' is not set "
        "(set ORCHESTRATOR_SECRET_DB_PASSWORD or pass --secrets FILE)",
        f"more.yaml:{position(more, 'api_token')}: secret 'api_token' is not set "
        "(set ORCHESTRATOR_SECRET_API_TOKEN or pass --secrets FILE)",
        "2 problems found",
    ]


def test_a_secret_too_short_to_mask_is_warned_about_once(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text(
        "node_templates:\n"
        "  a: {type: leaky.Thing, properties: {password: {get_secret: pin}}}\n"
        "  b: {type: leaky.Thing, properties: {password: {get_secret: pin}}}\n"
        "  c: {type: leaky.Thing, properties: {password: {get_secret: long_enough}}}\n")

    proc = cli(site, "install", "bp.yaml", "--state", str(tmp_path / "state.db"), cwd=tmp_path,
               **secret_env(pin="q7", long_enough="q7q7q7"))

    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: secret")]
    assert warnings == ["warning: secret 'pin' is shorter than 3 characters, so it cannot be masked "
                        "in events, logs or output"]
    for command in ("install", "uninstall"):
        helptext = " ".join(cli(site, command, "--help", cwd=tmp_path).stdout.split())
        assert re.search(r"shorter than 3 characters.*cannot be masked", helptext), helptext
