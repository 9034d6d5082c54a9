"""boto3 clients made at import (module level), as Lambda's docs advise, used on every call."""

from __future__ import annotations

import os
from typing import Any

import boto3

# Neither names a region: on Lambda the platform's AWS_DEFAULT_REGION gives it.
s3 = boto3.client("s3")
dynamodb = boto3.client("dynamodb")
BUCKET = os.environ["COMPAT_BUCKET"]
TABLE = os.environ["COMPAT_TABLE"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    s3.put_object(Bucket=BUCKET, Key=event["key"], Body=event["body"].encode())
    got = s3.get_object(Bucket=BUCKET, Key=event["key"])
    dynamodb.put_item(TableName=TABLE, Item={"key": {"S": event["key"]}, "seen": {"N": "1"}})
    item = dynamodb.get_item(TableName=TABLE, Key={"key": {"S": event["key"]}})["Item"]
    return {
        "body": got["Body"].read().decode(),
        "etag": got["ETag"],
        "item": item,
        "region": dynamodb.meta.region_name,
    }
