"""How `gradrepl check` tells its results: text for people (each differing cell as `FILE:LINE
cell N`, then what differs, and a summary line), one JSON object per cell for programs, JUnit XML
for CI dashboards, and GitHub Actions annotations when run there."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from gradrepl.check.compare import CellVerdict
from gradrepl.check.runner import FileResult


def shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def verdict_lines(path: Path, verdict: CellVerdict) -> list[str]:
    """`FILE:LINE cell N: summary`, then what differs, part by part."""
    return [f"{shown_path(path)}:{verdict.line} cell {verdict.cell}: {verdict.summary}",
            *(f"    {line}" for line in _difference_lines(verdict))]


def _difference_lines(verdict: CellVerdict) -> list[str]:
    lines: list[str] = []
    for difference in verdict.differences:
        lines.append(f"{difference.part}:")
        lines += difference.lines
    return lines


def text_lines(result: FileResult) -> list[str]:
    name = shown_path(result.path)
    lines: list[str] = []
    if result.problem is not None:
        lines.append(result.problem)
    for verdict in result.verdicts:
        if verdict.verdict == "failed":
            lines += verdict_lines(result.path, verdict)
    if result.updated is not None:
        lines.append(f"{name}: {result.updated}")
    return lines


def counts(results: Sequence[FileResult]) -> dict[str, int]:
    found = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    for result in results:
        found["errors"] += result.problem is not None
        for verdict in result.verdicts:
            found[verdict.verdict] += 1
    return found


def summary_line(results: Sequence[FileResult], update: bool) -> str:
    found = counts(results)
    files = f"in {len(results)} file{'s' if len(results) != 1 else ''}"
    if update:
        written = sum(1 for r in results if r.updated is not None)
        return (f"{written} of {len(results)} file{'s' if len(results) != 1 else ''} updated"
                + (f", {found['failed']} cell{'s' if found['failed'] != 1 else ''} failed" if found["failed"] else "")
                + (f", {found['errors']} not checked" if found["errors"] else ""))
    parts = [f"{found['passed']} passed", f"{found['failed']} failed"]
    if found["skipped"]:
        parts.append(f"{found['skipped']} skipped")
    if found["errors"]:
        parts.append(f"{found['errors']} file{'s' if found['errors'] != 1 else ''} not checked")
    return ", ".join(parts) + f" {files}"


def json_lines(result: FileResult) -> list[str]:
    name = shown_path(result.path)
    if result.problem is not None and not result.verdicts:
        return [json.dumps({"file": name, "cell": None, "verdict": "error", "summary": result.problem}, ensure_ascii=False)]
    return [json.dumps({"file": name, **verdict.to_json()}, ensure_ascii=False) for verdict in result.verdicts]


def write_junit(path: Path, results: Sequence[FileResult]) -> None:
    suites = ElementTree.Element("testsuites", name="gradrepl check")
    for result in results:
        name = shown_path(result.path)
        verdicts = result.verdicts
        suite = ElementTree.SubElement(suites, "testsuite", name=name, tests=str(len(verdicts) or 1),
                                       failures=str(sum(v.verdict == "failed" for v in verdicts)),
                                       skipped=str(sum(v.verdict == "skipped" for v in verdicts)),
                                       errors=str(int(result.problem is not None)))
        if result.problem is not None:
            case = ElementTree.SubElement(suite, "testcase", classname=name, name="read")
            ElementTree.SubElement(case, "error", message=result.problem)
        for verdict in verdicts:
            case = ElementTree.SubElement(suite, "testcase", classname=name, name=f"cell {verdict.cell} (line {verdict.line})")
            if verdict.verdict == "failed":
                failure = ElementTree.SubElement(case, "failure", message=verdict.summary)
                failure.text = "\n".join(_verdict_text(verdict))
            elif verdict.verdict == "skipped":
                ElementTree.SubElement(case, "skipped", message=verdict.summary)
    tree = ElementTree.ElementTree(suites)
    ElementTree.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _verdict_text(verdict: CellVerdict) -> list[str]:
    return [verdict.summary, *_difference_lines(verdict)]


def _escaped(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_value else text


def github_annotations(result: FileResult) -> list[str]:
    """`::error` lines GitHub Actions shows on the file and line of each failing cell."""
    name = _escaped(shown_path(result.path), True)
    lines = []
    if result.problem is not None:
        lines.append(f"::error file={name},title=gradrepl check::{_escaped(result.problem)}")
    for verdict in result.verdicts:
        if verdict.verdict == "failed":
            text = _escaped("\n".join(_verdict_text(verdict)))
            lines.append(f"::error file={name},line={verdict.line},title=gradrepl check cell {verdict.cell}::{text}")
    return lines


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def write_lines(out: IO[str], lines: Sequence[str]) -> None:
    for line in lines:
        out.write(line + "\n")
    out.flush()
