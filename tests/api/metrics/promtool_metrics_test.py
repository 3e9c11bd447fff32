# SPDX-License-Identifier: Apache-2.0
"""promtool check metrics on a real scrape reports no problem (metrics_scrape.py: sources).

  python3 promtool_metrics_test.py --exporter=bazel-bin/tests/api/metrics/sample_exporter
  python3 promtool_metrics_test.py --url=http://127.0.0.1:9464/metrics
"""
import argparse
import subprocess
import unittest

import metrics_scrape

ARGS = None


def check_metrics(text):
    result = subprocess.run([metrics_scrape.promtool(), "check", "metrics"], input=text,
                            capture_output=True, text=True, timeout=60)
    return result.returncode, (result.stdout + result.stderr).strip()


class PromtoolMetricsTest(unittest.TestCase):
    def test_promtool_reports_no_problems(self):
        rc, output = check_metrics(metrics_scrape.scrape(ARGS))
        self.assertEqual(output, "", "promtool check metrics found problems")
        self.assertEqual(rc, 0)

    def test_promtool_lints_at_all(self):
        # A counter without _total must be reported, or the test above proves nothing.
        rc, output = check_metrics("# HELP bad_bytes x\n# TYPE bad_bytes counter\nbad_bytes 1\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("_total", output)

    def test_every_family_has_help(self):
        text = metrics_scrape.scrape(ARGS)
        types = metrics_scrape.families(text)
        helps = metrics_scrape.help_texts(text)
        self.assertGreater(len(types), 20)
        for name in types:
            with self.subTest(family=name):
                self.assertTrue(helps.get(name, "").strip(), f"{name} has no HELP")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    metrics_scrape.add_source_args(parser)
    metrics_scrape.main_with(parser, globals())
