"""Count the attacks the test suite replays on update packages and devices, and whether each was refused,
and write the tally to docs/BENCHMARKS.md (section `security_attacks`).

Run: `python bench/security_attacks.py` (about five minutes on two cores). It runs the security tests
(tests/test_security.py, tests/test_security_attacks.py, tests/test_package.py without its slow fuzz) under
pytest, reads pytest's JUnit XML and groups the cases by test function: one function is one class of
attack (its parameters are the variants). A passing case is an attack the device refused as the test
demands (exit code 2, one `error:` line, the device's files unchanged where the test says so) or an
operation that had to succeed; a traceback fails a case, so the tally of failures counts them too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from sections import write_section

ROOT = Path(__file__).resolve().parents[1]
FILES = ("tests/test_security.py", "tests/test_security_attacks.py", "tests/test_package.py")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            *FILES,
            "-k",
            "not fuzz_thousands_of_cases",
            f"--junitxml={report}",
        ]
        done = subprocess.run(
            command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True
        )
        cases = ET.parse(report).getroot().iter("testcase")
        classes: Counter = Counter()
        failed: Counter = Counter()
        for case in cases:
            function = f"{case.get('classname').rsplit('.', 1)[-1]}::{case.get('name').split('[')[0]}"
            classes[function] += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed[function] += 1
    lines = [
        "## Update security: attacks replayed (`bench/security_attacks.py`)",
        "",
        f"- Date: {datetime.now(timezone.utc).date()}; the tiny model; {' '.join(FILES)} (the long fuzz, 3,000 cases or more, left out).",
        "- One test function is one class of attack or operator mistake; its parameters are the variants. A "
        "case passes when the device refused as demanded (exit code 2, one `error:` line, its files unchanged) "
        "or when an operation that must succeed did; a traceback fails the case.",
        "",
        "| file | classes | cases | failed |",
        "|---|---|---|---|",
    ]
    for name in FILES:
        stem = Path(name).stem
        mine = {f: n for f, n in classes.items() if f.startswith(stem + "::")}
        lines.append(f"| {name} | {len(mine)} | {sum(mine.values())} | {sum(failed[f] for f in mine)} |")
    lines += [
        f"| all | {len(classes)} | {sum(classes.values())} | {sum(failed.values())} |",
        "",
        f"pytest exit code {done.returncode}.",
        "",
    ]
    write_section("security_attacks", lines)
    print("\n".join(lines))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
