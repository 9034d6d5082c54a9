"""Classification cost: compiled scanner, pure-Python twin, and `orjson.loads` + key checks.

Over the test corpus (3 samples per kind) in AWS key order, sorted and pretty-printed:
ns per event, median of several timed repeats per sample, then the median per kind.

    python -m bench.classify [--repeat 7] [--number 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from typing import Any

import orjson

from bench.harness import RESULTS, ROOT, publish, results_dir

sys.path.insert(0, str(ROOT))  # the corpus lives with the tests

from tests.events import corpus
from worker import scan
from worker.classify import Classifier, classify

FORMS = {
    "aws order": lambda e: orjson.dumps(e),
    "sorted": lambda e: orjson.dumps(e, option=orjson.OPT_SORT_KEYS),
    "pretty": lambda e: orjson.dumps(e, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2),
}
HEADLINE = ("apigw-rest", "apigw-http", "alb", "sqs", "s3", "eventbridge")


def parsed(raw: bytes) -> str:
    """The baseline: a full parse, then the same questions asked of the dict."""
    e: Any = orjson.loads(raw)
    if not isinstance(e, dict):
        return "direct"
    records = e.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        r = records[0]
        if r.get("EventSource") == "aws:sns":
            return "sns"
        if "cf" in r:
            return "lambda-edge"
        source = r.get("eventSource")
        if source in ("aws:sqs", "aws:s3", "aws:dynamodb", "aws:kinesis", "aws:ses"):
            return str(source)[4:]
    if "records" in e and "deliveryStreamArn" in e:
        return "firehose"
    if e.get("eventSource") in ("aws:kafka", "SelfManagedKafka"):
        return "kafka"
    if e.get("eventSource") in ("aws:mq", "aws:rmq"):
        return "mq"
    if isinstance(e.get("awslogs"), dict):
        return "cloudwatch-logs"
    if e.get("version") == "0" and "detail-type" in e and "source" in e:
        return "eventbridge"
    if "triggerSource" in e and "userPoolId" in e:
        return "cognito"
    if "RequestType" in e and "ResponseURL" in e:
        return "cfn-custom-resource"
    if e.get("type") in ("TOKEN", "REQUEST") and ("methodArn" in e or "routeArn" in e):
        return "apigw-authorizer"
    ctx = e.get("requestContext")
    if isinstance(ctx, dict):
        if e.get("version") == "2.0" and "http" in ctx:
            return "function-url" if ".lambda-url." in str(ctx.get("domainName")) else "apigw-http"
        if "elb" in ctx:
            return "alb"
        if "httpMethod" in e and "resource" in e:
            return "apigw-http-v1" if e.get("version") == "1.0" else "apigw-rest"
    return "direct"


def ns_per_call(fn: Any, raw: bytes, repeat: int, number: int) -> float:
    times = timeit.repeat(lambda: fn(raw), repeat=repeat, number=number)
    return statistics.median(times) / number * 1e9


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=2000)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    # The extension column times the process-wide `classify` every source calls.
    compiled, twin = classify, Classifier(scan)
    if compiled.backend != "extension":
        raise SystemExit("the compiled scanner is not built: pip install -e . compiles ext/")
    impls = {"extension": compiled, "twin": twin, "orjson + checks": parsed}
    rows: dict[str, dict[str, dict[str, float]]] = {}
    samples = corpus()
    for form, dump in FORMS.items():
        print(
            f"[classify] {form}: {len(samples)} samples x {len(impls)} implementations", flush=True
        )
        per_kind: dict[str, dict[str, list[float]]] = {}
        for kind, _, event in samples:
            raw = dump(event)
            for name, fn in impls.items():
                t = ns_per_call(fn, raw, args.repeat, args.number)
                per_kind.setdefault(kind, {}).setdefault(name, []).append(t)
            per_kind[kind].setdefault("bytes", []).append(float(len(raw)))
        rows[form] = {
            kind: {name: statistics.median(v) for name, v in by.items()}
            for kind, by in per_kind.items()
        }
    # The batch target is its own figure: the per-kind median hides the ten-record sample.
    batch = max((e for k, _, e in samples if k == "sqs"), key=lambda e: len(e["Records"]))
    raw = orjson.dumps(batch)
    ours_ns = ns_per_call(compiled, raw, args.repeat, args.number)
    base_ns = ns_per_call(parsed, raw, args.repeat, args.number)
    summary = {
        "sqs_batch": {
            "records": len(batch["Records"]),
            "bytes": len(raw),
            "extension_ns": ours_ns,
            "orjson_ns": base_ns,
        },
        "rows": rows,
        "headline_median_ns": {
            form: statistics.median(rows[form][k]["extension"] for k in HEADLINE) for form in FORMS
        },
        "method": {"repeat": args.repeat, "number": args.number, "statistic": "median"},
    }
    publish(out, "classify", summary, table(summary))
    return summary


def table(summary: dict[str, Any]) -> str:
    lines = []
    for form, rows in summary["rows"].items():
        lines += [
            f"**{form}** (headline median over {', '.join(HEADLINE)}: "
            f"{summary['headline_median_ns'][form]:,.0f} ns)",
            "",
            "| kind | bytes | extension ns | twin ns | orjson + checks ns | extension vs orjson |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind, r in rows.items():
            lines.append(
                f"| {kind} | {r['bytes']:,.0f} | {r['extension']:,.0f} | {r['twin']:,.0f} | "
                f"{r['orjson + checks']:,.0f} | {r['orjson + checks'] / r['extension']:.1f}x |"
            )
        lines.append("")
    b = summary["sqs_batch"]
    lines.append(
        f"SQS batch of {b['records']} records ({b['bytes']:,} bytes, AWS order): extension "
        f"{b['extension_ns']:,.0f} ns, orjson + checks {b['orjson_ns']:,.0f} ns: "
        f"**{b['orjson_ns'] / b['extension_ns']:.1f}x** (target ≥ 20x)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
