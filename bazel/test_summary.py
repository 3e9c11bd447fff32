#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Counts test cases from the JUnit XML that `bazel test` leaves in bazel-testlogs.

usage: test_summary.py TESTLOGS_DIR TARGET...
Prints "<passed> <failed>" for the given test targets. A target without a test.xml (it did not
build, or was not run) counts as one failed case; a target whose XML reports no case counts as
one case, passed or failed by its status file.
"""
import os
import sys
import xml.etree.ElementTree as ET


def count(testlogs, target):
    rel = target.lstrip("/").replace(":", "/")
    xml_path = os.path.join(testlogs, rel, "test.xml")
    if not os.path.exists(xml_path):
        return 0, 1
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError:
        return 0, 1
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failed = 0
    for suite in suites:
        for case in suite.iter("testcase"):
            if case.get("status") == "notrun" or case.find("skipped") is not None:
                continue
            tests += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
    if tests == 0:
        # Non-gtest targets (scripts): Bazel writes one synthetic case, or none.
        failed_total = int(root.get("failures", "0")) + int(root.get("errors", "0"))
        return (0, 1) if failed_total else (1, 0)
    return tests - failed, failed


def main():
    testlogs = sys.argv[1]
    passed = failed = 0
    for target in sys.argv[2:]:
        p, f = count(testlogs, target)
        passed += p
        failed += f
        if f:
            print(f"  failed: {target}", file=sys.stderr)
    print(passed, failed)


if __name__ == "__main__":
    main()
