# SPDX-License-Identifier: Apache-2.0
"""Every metric the Grafana dashboard and the example alerts query exists in a real scrape.

  python3 dashboard_test.py --dashboard=deploy/grafana/dashboards/shadowrelay.json \\
      --rules=deploy/prometheus/alerts.yml (--exporter=PATH | --url=URL | --file=PATH)

Metric names are taken from every PromQL `expr` of the dashboard's panels, its templating
queries (label_values(metric, label)) and every rule's expr; a histogram's _bucket/_sum/_count
count as present when the family is. `up` is Prometheus's own series, allowed in rules only.
"""
import argparse
import json
import re
import subprocess
import unittest

import metrics_scrape

ARGS = None

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "bool", "inf", "nan", "atan2"}


def promql_metric_names(expr):
    """Metric names in a PromQL expression (Grafana variables allowed)."""
    s = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_]\w*", "", expr)  # Grafana variables
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', s)  # strings
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)", s):
        name = m.group(1)
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", s[m.end():]):
            continue  # keyword, or a function / aggregation call
        names.add(name)
    return names


def template_metric_names(query):
    """Names in a Grafana Prometheus variable query."""
    m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*[A-Za-z_]\w*\s*\)\s*", query)
    if m:
        return promql_metric_names(m.group(1))
    if re.fullmatch(r"\s*label_values\(\s*[A-Za-z_]\w*\s*\)\s*", query):
        return set()
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", query)
    return promql_metric_names(m.group(1) if m else query)


def dashboard_panels(dashboard):
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(dashboard):
    """(where, expr) of every panel target."""
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"]


def template_queries(dashboard):
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        yield var["name"], query


def rule_exprs(path):
    """(alert name, expr) of every rule in a rules file written as alerts.yml is: `- alert:` or
    `- record:` items whose `expr:` is inline or a `|`/`>` block (no YAML module needed)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    name = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*-\s*(?:alert|record):\s*(\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m and name:
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest in ("|", ">", "|-", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or
                                          len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                out.append((name, " ".join(block)))
                name = None
                continue
            out.append((name, rest.strip("'\"")))
            name = None
        i += 1
    return out


def optional(name):
    """A family this scrape's server need not export (--optional PREFIX: e.g. the etcd store's,
    on a server without etcd)."""
    return any(name.startswith(prefix) for prefix in ARGS.optional)


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(ARGS.dashboard, encoding="utf-8") as f:
            cls.dashboard = json.load(f)
        cls.scrape = metrics_scrape.scrape(ARGS)

    def assertExported(self, name, where):
        if optional(name):
            return
        self.assertTrue(metrics_scrape.exported(name, self.scrape),
                        f"{where}: {name} is not in the scrape")

    def test_promql_names_are_extracted(self):
        # The extractor itself: functions, aggregations, groupings and variables are no names.
        self.assertEqual(
            promql_metric_names('histogram_quantile(0.9, sum by (le) (rate(x_bucket{a=~"$v"}'
                                '[$__rate_interval]))) / on (job) group_left(foo) y offset 1h'),
            {"x_bucket", "y"})
        self.assertEqual(promql_metric_names("sum(rate(a_total[5m])) by (user) > 1e3 and b"),
                         {"a_total", "b"})
        self.assertEqual(template_metric_names("label_values(m_total, user)"), {"m_total"})

    def test_every_panel_expr_is_exported(self):
        exprs = list(dashboard_exprs(self.dashboard))
        self.assertGreater(len(exprs), 20)
        for where, expr in exprs:
            names = promql_metric_names(expr)
            self.assertTrue(names, f"{where}: no metric in {expr!r}")
            for name in names:
                with self.subTest(where=where, metric=name):
                    self.assertExported(name, where)

    def test_every_template_query_is_exported(self):
        queries = dict(template_queries(self.dashboard))
        self.assertIn("user", queries)
        self.assertEqual(queries["user"].replace(" ", ""),
                         "label_values(shadowrelay_data_bytes_total,user)")
        for var, query in queries.items():
            for name in template_metric_names(query):
                with self.subTest(variable=var, metric=name):
                    self.assertExported(name, f"variable {var}")

    def test_covers_the_issue_topics(self):
        used = set()
        for _, expr in dashboard_exprs(self.dashboard):
            used |= promql_metric_names(expr)
        for name in ["shadowrelay_data_bytes_total", "shadowrelay_tcp_connections_active",
                     "shadowrelay_tcp_connections_closed_total", "shadowrelay_timeouts_total",
                     "shadowrelay_probe_bytes_bucket", "shadowrelay_tcp_connection_bytes_bucket",
                     "shadowrelay_tcp_connection_duration_seconds_bucket",
                     "shadowrelay_udp_associations_active",
                     "shadowrelay_udp_associations_created_total",
                     "shadowrelay_udp_associations_evicted_total",
                     "shadowrelay_udp_dropped_total", "shadowrelay_dns_cache_hits_total",
                     "shadowrelay_dns_cache_misses_total",
                     "shadowrelay_dns_lookup_duration_seconds_bucket",
                     "process_resident_memory_bytes", "process_cpu_seconds_total",
                     "process_open_fds"]:
            self.assertIn(name, used, f"no panel shows {name}")

    def test_dashboard_structure(self):
        d = self.dashboard
        self.assertGreaterEqual(d.get("schemaVersion", 0), 36)
        self.assertTrue(d.get("uid"))
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        ids = set()
        for panel in dashboard_panels(d):
            title = panel.get("title")
            with self.subTest(panel=title):
                self.assertTrue(title)
                self.assertNotIn(panel["id"], ids, "duplicate panel id")
                ids.add(panel["id"])
                pos = panel["gridPos"]
                self.assertLessEqual(pos["x"] + pos["w"], 24)
                if panel["type"] == "row":
                    continue
                self.assertTrue(panel.get("description"), "panels explain themselves")
                self.assertEqual(panel["datasource"]["uid"], "${datasource}")
                refs = [t["refId"] for t in panel["targets"]]
                self.assertEqual(len(refs), len(set(refs)))
                for target in panel["targets"]:
                    self.assertEqual(target["datasource"]["uid"], "${datasource}")
        # Panels do not overlap.
        cells = set()
        for panel in dashboard_panels(d):
            pos = panel["gridPos"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    self.assertNotIn((x, y), cells, f"panel {panel['title']!r} overlaps")
                    cells.add((x, y))


class RulesTest(unittest.TestCase):
    def test_every_rule_expr_is_exported(self):
        scrape = metrics_scrape.scrape(ARGS)
        rules = rule_exprs(ARGS.rules)
        # Cross-check the extractor with promtool's own count.
        check = subprocess.run([metrics_scrape.promtool(), "check", "rules", ARGS.rules],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        found = re.search(r"SUCCESS: (\d+) rules found", check.stdout)
        self.assertIsNotNone(found, check.stdout)
        self.assertEqual(len(rules), int(found.group(1)))
        for alert, expr in rules:
            names = promql_metric_names(expr)
            self.assertTrue(names, f"{alert}: no metric in {expr!r}")
            for name in names - {"up"}:
                if optional(name):
                    continue
                with self.subTest(alert=alert, metric=name):
                    self.assertTrue(metrics_scrape.exported(name, scrape),
                                    f"{alert}: {name} is not in the scrape")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--optional", action="append", default=[],
                        help="a metric name prefix the scrape may lack (repeatable)")
    metrics_scrape.add_source_args(parser)
    metrics_scrape.main_with(parser, globals())
