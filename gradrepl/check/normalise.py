"""What output text loses before it is compared: the parts that change from run to run without
the lesson changing (memory addresses, colour codes, times and durations, temporary paths, the
kernel's temporary cell files), and the user's own rules, nbval's `--sanitize-with` file:

    [dates]
    regex: \\d{1,2}/\\d{1,2}/\\d{2,4}
    replace: DATE

Each section holds one `regex:` and its `replace:` (empty when left out); they apply in the
file's order, after the built-in rules.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")

_BUILT_IN: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/(?:tmp|var/folders/[\w/]+?/T)/ipykernel_\d+/\d+\.py"), "<cell file>"),
    (re.compile(r"(?:/private)?/(?:tmp|var/tmp|var/folders/[\w/]+?/T)(?:/[\w.\-]+)+"), "<temp path>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,16}\b"), "0x<address>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"), "<timestamp>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s|sec|secs|seconds?|min|minutes?)\b"), "<duration>"),
)


class SanitizeError(Exception):
    """A sanitize file that cannot be used; str() is one line for the user."""


@dataclass(frozen=True)
class Normaliser:
    rules: tuple[tuple[re.Pattern[str], str], ...] = ()

    def __call__(self, text: str) -> str:
        text = ANSI.sub("", text)
        for pattern, replacement in (*_BUILT_IN, *self.rules):
            text = pattern.sub(replacement, text)
        return text


def sanitize_rules(paths: Sequence[Path]) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The rules of nbval-style sanitize files, in order."""
    rules: list[tuple[re.Pattern[str], str]] = []
    for path in paths:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with path.open(encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as err:
            raise SanitizeError(f"gradrepl: cannot read the sanitize file '{path}': {err.strerror or err}") from err
        except (configparser.Error, UnicodeDecodeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise SanitizeError(f"gradrepl: '{path}' is not a sanitize file ([section] with regex: and replace:): {first}") from err
        for section in parser.sections():
            regex = parser.get(section, "regex", fallback=None)
            if regex is None:
                raise SanitizeError(f"gradrepl: '{path}' section [{section}] has no regex:")
            try:
                pattern = re.compile(regex)
            except re.error as err:
                raise SanitizeError(f"gradrepl: '{path}' section [{section}]: not a regular expression: {err}") from err
            rules.append((pattern, parser.get(section, "replace", fallback="")))
    return tuple(rules)
