"""Secrets for ``get_secret``: where values come from, how they are masked, how outputs show them.

``get_secret: db_password`` reads ``ORCHESTRATOR_SECRET_DB_PASSWORD`` or the key
``db_password`` of the YAML file given with ``--secrets``. Values are looked up when a
``ctx`` is built, never planned or stored by the engine, and registered with the event
masker in every form they take when printed (``printed_forms``), so events, logs,
``--json``, the live view, failure summaries and hook traces never show them. Outputs
show them as ``<secret:NAME>`` unless asked (``OutputSecrets``, ``render_output``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.dsl.functions import as_function
from orchestrator.dsl.problems import Mark, Problems
from orchestrator.dsl.yaml_source import read_yaml_file

ENV_PREFIX = "ORCHESTRATOR_SECRET_"
MIN_MASKABLE = 3  # characters; a shorter value (or line of a value) would mask ordinary text too
MASK = "******"


def secret_env_name(name: str) -> str:
    """``db-password`` -> ``DB_PASSWORD`` (read from ``ORCHESTRATOR_SECRET_DB_PASSWORD``)."""
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def missing_secret_message(name: str) -> str:
    return f"secret '{name}' is not set (set {ENV_PREFIX}{secret_env_name(name)} or pass --secrets FILE)"


class Secrets(Mapping[str, Any]):
    """Environment first, then the secrets file.

    ``on_short(name)`` is called once per secret read whose value (or a string in it)
    is too short to mask; the command line prints a warning naming the secret.
    """

    def __init__(self, file_values: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 on_short: Callable[[str], None] | None = None) -> None:
        self._file = dict(file_values or {})
        self._env = os.environ if env is None else env
        self._on_short = on_short
        self._checked: set[str] = set()
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Any:
        key = ENV_PREFIX + secret_env_name(name)
        value = self._env[key] if key in self._env else self._file[name]
        if self._on_short is not None and name not in self._checked:
            with self._lock:
                first = name not in self._checked
                self._checked.add(name)
            if first and any(len(s) < MIN_MASKABLE for s in secret_strings(value)):
                self._on_short(name)
        return value

    def __iter__(self) -> Iterator[str]:
        names = set(self._file)
        names.update(k[len(ENV_PREFIX):].lower() for k in self._env if k.startswith(ENV_PREFIX))
        return iter(sorted(names))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (ENV_PREFIX + secret_env_name(name) in self._env or name in self._file)


def warn_short_secret(name: str) -> None:
    print(f"warning: secret '{name}' is shorter than {MIN_MASKABLE} characters, so it cannot be masked in "
          "events, logs or output", file=sys.stderr, flush=True)


def load_secrets(path: str | Path | None, problems: Problems,
                 on_short: Callable[[str], None] | None = warn_short_secret) -> Secrets:
    """The secrets a command may use: the environment, then ``path`` (a YAML mapping)."""
    values: Mapping[str, Any] = {}
    if path is not None:
        data = read_yaml_file(Path(path), str(path), problems)
        if data is not None and not isinstance(data, dict):
            problems.add(getattr(data, "mark", None) or Mark(str(path), 1, 1),
                         "a secrets file must be a mapping of secret name to value")
        elif data is not None:
            values = {str(k): v for k, v in data.items()}
    return Secrets(values, on_short=on_short)


def secret_names(value: Any) -> set[str]:
    """Every secret name a planned value refers to."""
    names: set[str] = set()

    def walk(v: Any) -> None:
        fn = as_function(v) if isinstance(v, dict) else None
        if fn is not None and fn[0] == "get_secret":
            args = fn[1]
            names.add(args if isinstance(args, str) else args[0])
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(value)
    return names


def secret_strings(value: Any) -> list[str]:
    """The string leaves of a secret value, for masking."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in secret_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in secret_strings(v)]
    return [str(value)] if value is not None and not isinstance(value, bool) else []


def printed_forms(secret: str) -> set[str]:
    """Every way ``secret`` can appear in printed text, for masking.

    Raw; escaped as ``repr()`` does inside either quote style, of the text and of its
    UTF-8 bytes; escaped as ``json.dumps`` does with and without ``ensure_ascii``. A
    multi-line secret (a PEM key) also gives each of its lines, as they are and
    stripped, in each form, so a line printed on its own is caught too. Lines shorter
    than ``MIN_MASKABLE`` (stripped) are left out: masking them would mask ordinary
    text everywhere, and alone they disclose next to nothing.
    """
    if len(secret) < MIN_MASKABLE:
        return set()
    texts = {secret}
    lines = secret.splitlines()
    if len(lines) > 1:
        texts.update(part for line in lines if len(line.strip()) >= MIN_MASKABLE for part in (line, line.strip()))
    forms: set[str] = set()
    for text in texts:
        forms.add(text)
        forms.add(json.dumps(text)[1:-1])
        forms.add(json.dumps(text, ensure_ascii=False)[1:-1])
        # repr picks double quotes only for a text holding no double quote: escape both ways
        forms.add(repr("'\"" + text)[4:-1])
        forms.add(repr(("'\"" + text).encode())[5:-1])
        if '"' not in text:
            forms.add(repr("'" + text)[2:-1])
            forms.add(repr(("'" + text).encode())[3:-1])
    return forms


# ---------------------------------------------------------------- outputs


class _Hidden(str):
    """A string (or scalar) from secret ``name`` in an output shown masked.

    Its text is ``MASK``, so inside a ``concat`` it reads as masked text; on its own it
    is rendered ``<secret:NAME>`` by ``render_output``.
    """

    name: str

    def __new__(cls, name: str) -> _Hidden:
        self = super().__new__(cls, MASK)
        self.name = name
        return self


class _Unavailable(dict):  # type: ignore[type-arg]
    """A secret that is not set; any key path into it leads back to it (``get_secret: [name, key]``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> _Unavailable:
        return self

    def __str__(self) -> str:
        return f"<secret:{self.name} unavailable>"


def _hide(name: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hide(name, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide(name, v) for v in value]
    return _Hidden(name)


class OutputSecrets(Mapping[str, Any]):
    """``secrets`` as outputs resolve them: hidden unless ``reveal``; a missing one is a placeholder.

    Hidden values keep their shape (a mapping stays a mapping, so ``[name, key]`` paths
    work) with every scalar replaced by a marker ``render_output`` shows as
    ``<secret:NAME>``. Nothing is ever missing, so no output fails for want of a secret.
    """

    def __init__(self, secrets: Mapping[str, Any], reveal: bool = False) -> None:
        self._secrets = secrets
        self._reveal = reveal

    def __getitem__(self, name: str) -> Any:
        if name not in self._secrets:
            return _Unavailable(name)
        value = self._secrets[name]
        return value if self._reveal else _hide(name, value)

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def __bool__(self) -> bool:
        return True


def render_output(value: Any, mask: Callable[[str], str]) -> Any:
    """An output value resolved against ``OutputSecrets``, ready to print.

    A hidden secret on its own becomes ``<secret:NAME>``; a missing one
    ``<secret:NAME unavailable>``; every other text goes through ``mask``, which catches
    secrets that reached the value another way (a runtime property a plugin copied).
    """
    if isinstance(value, _Unavailable):
        return str(value)
    if isinstance(value, _Hidden):
        return f"<secret:{value.name}>"
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask(k) if isinstance(k, str) else k: render_output(v, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [render_output(v, mask) for v in value]
    return value
