"""What the user chose and gradrepl remembers across sessions (today: the theme), kept in
$XDG_CONFIG_HOME/gradrepl/config.toml. A file that cannot be read or parsed gives one
warning and the defaults; it is written atomically (a temporary file renamed over it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomllib's ancestor, when installed; else only `key = "string"` lines are read
    try:
        import tomli as tomllib  # type: ignore[import-not-found]
    except ImportError:
        tomllib = None


def config_dir() -> Path:
    """$XDG_CONFIG_HOME/gradrepl (~/.config/gradrepl)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "gradrepl"


def default_path() -> Path:
    return config_dir() / "config.toml"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'


def _loads(text: str) -> dict[str, object]:
    if tomllib is not None:
        return dict(tomllib.loads(text))
    data: dict[str, object] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        value = value.strip()
        if not equals or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise ValueError(f"cannot read {line!r}")
        data[key.strip().strip('"')] = value[1:-1]
    return data


class Settings:
    """The settings read from `path` (None: nothing is read or written, as in tests)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.theme: str | None = None
        self.error: str | None = None  # one line for the user, then cleared by whoever shows it
        self._other: dict[str, str | int | float | bool] = {}  # keys this version does not use, kept
        if path is not None:
            self._load(path)

    def ratio(self, key: str, default: float) -> float:
        """A positive number the file sets (`vanishing_ratio = 1e-7`), else `default`."""
        value = self._other.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            return default
        return float(value)

    def value(self, key: str) -> str | int | float | bool | None:
        """What the file sets `key` to, as it is (None: not set)."""
        return self._other.get(key)

    def text(self, key: str) -> str | None:
        """A string the file sets (`server_token = "..."`), else None."""
        value = self._other.get(key)
        return value if isinstance(value, str) and value else None

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as err:
            self.error = f"Config {path} not read ({getattr(err, 'strerror', None) or err}): defaults used."
            return
        try:
            data = _loads(text)
        except ValueError as err:  # tomllib.TOMLDecodeError is a ValueError
            self.error = f"Config {path} is not valid TOML ({err}): defaults used."
            return
        theme = data.pop("theme", None)
        if theme is not None and not isinstance(theme, str):
            self.error = f"Config {path}: theme should be a string such as \"textual-light\"; the default is used."
        else:
            self.theme = theme
        self._other = {k: v for k, v in data.items() if isinstance(v, str | int | float | bool)}

    def remember_theme(self, theme: str) -> None:
        if theme == self.theme:
            return
        self.theme = theme
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        lines = []
        if self.theme is not None:
            lines.append(f"theme = {_toml_string(self.theme)}")
        for key, value in self._other.items():
            shown = _toml_string(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else repr(value)
            lines.append(f"{_toml_string(key)} = {shown}")
        try:
            from gradrepl.cells.percent import write_atomically

            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, ("# gradrepl's settings (written by gradrepl)\n" + "\n".join(lines) + "\n").encode())
        except OSError as err:
            self.error = f"Config not saved: {err.strerror or err} ({self.path})"
