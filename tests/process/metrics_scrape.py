#!/usr/bin/python3
"""Scrapes a kvnode metrics page with a real HTTP client (urllib) and parses it
with Prometheus's own parser (python3-prometheus-client), or parses text given
on stdin ("-": kvctl stats). Prints one line per sample, "name{a="x",b="y"}
value" with the labels sorted, then "families N"; exits 1 if the text does not
parse or a histogram is inconsistent (buckets not cumulative, +Inf != count)."""
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    source = sys.argv[1]
    if source == "-":
        text = sys.stdin.read()
    else:
        with urllib.request.urlopen(source, timeout=10) as response:
            if response.status != 200:
                print(f"HTTP {response.status}")
                return 1
            content_type = response.headers.get("Content-Type", "")
            if not content_type.startswith("text/plain; version=0.0.4"):
                print(f"unexpected Content-Type {content_type!r}")
                return 1
            text = response.read().decode("utf-8")
    families = list(text_string_to_metric_families(text))
    for family in families:
        buckets = {}
        counts = {}
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            print(f"{sample.name}{{{labels}}} {sample.value:.17g}")
            if family.type == "histogram":
                key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                if sample.name.endswith("_bucket"):
                    buckets.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
                elif sample.name.endswith("_count"):
                    counts[key] = sample.value
        for key, series in buckets.items():
            values = [v for _, v in sorted(series)]
            if values != sorted(values):
                print(f"{family.name} {key}: buckets not cumulative")
                return 1
            if values[-1] != counts.get(key):
                print(f"{family.name} {key}: +Inf bucket {values[-1]} != count {counts.get(key)}")
                return 1
    print(f"families {len(families)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
