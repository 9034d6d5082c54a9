"""Sample events per kind, in the shapes AWS documents (trimmed, keys in AWS's order).

Each builder returns (kind, route, event); `corpus()` gives three samples per kind. The
tests also classify every sample with its keys sorted and pretty-printed.
"""

from __future__ import annotations

from typing import Any

Sample = tuple[str, str, dict[str, Any]]
REGION = "us-east-1"
ACCOUNT = "123456789012"


def _rest(method: str, resource: str, path: str, version: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Accept": "*/*", "Host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"Accept": ["*/*"]},
        "queryStringParameters": {"q": "1"},
        "pathParameters": {"id": path.rsplit("/", 1)[-1]},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.1", "userAgent": "curl/8"},
            "path": f"/prod{path}",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "resourcePath": resource,
            "stage": "prod",
        },
        "body": '{"version": "0", "source": "not-an-event"}',
        "isBase64Encoded": False,
    }
    if version:
        event = {"version": version, **event}
    return event


def apigw_rest() -> list[Sample]:
    return [
        ("apigw-rest", "GET /items/{id}", _rest("GET", "/items/{id}", "/items/7", None)),
        ("apigw-rest", "POST /orders", _rest("POST", "/orders", "/orders", None)),
        ("apigw-rest", "DELETE /a/{b}", _rest("DELETE", "/a/{b}", "/a/x", None)),
    ]


def apigw_http_v1() -> list[Sample]:
    return [
        ("apigw-http-v1", "GET /items/{id}", _rest("GET", "/items/{id}", "/items/7", "1.0")),
        ("apigw-http-v1", "PUT /users", _rest("PUT", "/users", "/users", "1.0")),
        ("apigw-http-v1", "PATCH /x/{y}", _rest("PATCH", "/x/{y}", "/x/1", "1.0")),
    ]


def _v2(method: str, path: str, route_key: str, domain: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "a=1",
        "cookies": ["c1=v1"],
        "headers": {"content-type": "application/json", "host": domain},
        "queryStringParameters": {"a": "1"},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "api-id",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.2",
                "userAgent": "agent",
            },
            "requestId": "id",
            "routeKey": route_key,
            "stage": "$default",
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390,
        },
        "body": '{"Records": [{"eventSource": "aws:sqs"}]}',
        "pathParameters": {"p": "1"},
        "isBase64Encoded": False,
        "stageVariables": {"s": "v"},
    }


def apigw_http() -> list[Sample]:
    api = "api-id.execute-api.us-east-1.amazonaws.com"
    return [
        ("apigw-http", "GET /items/{id}", _v2("GET", "/items/7", "GET /items/{id}", api)),
        ("apigw-http", "POST /orders", _v2("POST", "/orders", "$default", api)),
        ("apigw-http", "ANY /proxy/{p+}", _v2("PUT", "/proxy/a/b", "ANY /proxy/{p+}", api)),
    ]


def function_url() -> list[Sample]:
    url = "abcdefg.lambda-url.us-east-1.on.aws"
    return [
        ("function-url", "GET /", _v2("GET", "/", "$default", url)),
        ("function-url", "POST /hook", _v2("POST", "/hook", "$default", url)),
        (
            "function-url",
            "DELETE /x",
            _v2("DELETE", "/x", "$default", "zz.lambda-url.eu-west-1.on.aws"),
        ),
    ]


def apigw_authorizer() -> list[Sample]:
    arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/prod/GET/items"
    request = _rest("GET", "/items", "/items", None)
    request = {"type": "REQUEST", "methodArn": arn, **request}
    v2 = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": arn.replace("GET/items", "POST/orders"),
        "identitySource": ["user1", "123"],
        "routeKey": "POST /orders",
        "rawPath": "/orders",
        "headers": {"header1": "value1"},
        "requestContext": {
            "http": {"method": "POST", "path": "/orders"},
            "domainName": "api-id.execute-api.us-east-1.amazonaws.com",
        },
    }
    return [
        (
            "apigw-authorizer",
            arn,
            {"type": "TOKEN", "authorizationToken": "allow", "methodArn": arn},
        ),
        ("apigw-authorizer", arn, request),
        ("apigw-authorizer", v2["routeArn"], v2),
    ]


def _alb(method: str, path: str) -> dict[str, Any]:
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/lambda/abc"
            }
        },
        "httpMethod": method,
        "path": path,
        "queryStringParameters": {"query": "1234ABCD"},
        "headers": {
            "accept": "text/html",
            "host": "lambda-alb-123578498.us-east-1.elb.amazonaws.com",
        },
        "body": "",
        "isBase64Encoded": False,
    }


def alb() -> list[Sample]:
    return [
        ("alb", "GET /lambda", _alb("GET", "/lambda")),
        ("alb", "POST /submit", _alb("POST", "/submit")),
        ("alb", "HEAD /", _alb("HEAD", "/")),
    ]


def _edge(method: str, uri: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "cf": {
                    "config": {
                        "distributionDomainName": "d111111abcdef8.cloudfront.net",
                        "distributionId": "EDFDVBD6EXAMPLE",
                        "eventType": "viewer-request",
                        "requestId": "4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==",
                    },
                    "request": {
                        "clientIp": "203.0.113.178",
                        "headers": {
                            "host": [{"key": "Host", "value": "d111111abcdef8.cloudfront.net"}]
                        },
                        "method": method,
                        "querystring": "",
                        "uri": uri,
                    },
                }
            }
        ]
    }


def lambda_edge() -> list[Sample]:
    return [
        ("lambda-edge", "GET /", _edge("GET", "/")),
        ("lambda-edge", "GET /img/a.png", _edge("GET", "/img/a.png")),
        ("lambda-edge", "POST /api", _edge("POST", "/api")),
    ]


def _record(source: str, arn_key: str, arn: str, **extra: Any) -> dict[str, Any]:
    return {"eventID": "1", "eventSource": source, arn_key: arn, "awsRegion": REGION, **extra}


def sqs() -> list[Sample]:
    def batch(queue: str, n: int) -> dict[str, Any]:
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"
        return {
            "Records": [
                {
                    "messageId": f"059f36b4-87a3-44ab-83d2-66197{i:07d}",
                    "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
                    "body": '{"eventSource": "aws:s3", "detail-type": "x"}',
                    "attributes": {
                        "ApproximateReceiveCount": "1",
                        "SentTimestamp": "1545082649183",
                    },
                    "messageAttributes": {},
                    "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": REGION,
                }
                for i in range(n)
            ]
        }

    return [
        ("sqs", f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders", batch("orders", 1)),
        ("sqs", f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs", batch("jobs", 10)),
        ("sqs", f"arn:aws:sqs:{REGION}:{ACCOUNT}:fifo.fifo", batch("fifo.fifo", 3)),
    ]


def sns() -> list[Sample]:
    def note(topic: str) -> dict[str, Any]:
        arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic}"
        return {
            "Records": [
                {
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": f"{arn}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
                    "EventSource": "aws:sns",
                    "Sns": {
                        "Type": "Notification",
                        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                        "TopicArn": arn,
                        "Subject": "example subject",
                        "Message": "example message",
                        "Timestamp": "1970-01-01T00:00:00.000Z",
                    },
                }
            ]
        }

    return [
        ("sns", f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts", note("alerts")),
        ("sns", f"arn:aws:sns:{REGION}:{ACCOUNT}:orders", note("orders")),
        ("sns", f"arn:aws:sns:{REGION}:{ACCOUNT}:t-3", note("t-3")),
    ]


def s3() -> list[Sample]:
    def put(bucket: str, key: str) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": REGION,
                    "eventTime": "2019-09-03T19:37:27.192Z",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "828aa6fc-f7b5-4305-8584-487c791949c1",
                        "bucket": {
                            "name": bucket,
                            "ownerIdentity": {"principalId": "A3I5XTEXAMAI3E"},
                            "arn": f"arn:aws:s3:::{bucket}",
                        },
                        "object": {
                            "key": key,
                            "size": 1305107,
                            "eTag": "b21b84d653bb07b05b1e6b33684dc11b",
                        },
                    },
                }
            ]
        }

    return [
        ("s3", "uploads", put("uploads", "a.jpg")),
        ("s3", "my-bucket", put("my-bucket", "dir/b+c.txt")),
        ("s3", "logs.example", put("logs.example", "x")),
    ]


def dynamodb() -> list[Sample]:
    def stream(table: str) -> dict[str, Any]:
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/2015-06-27T00:48:05.899"
        change = {
            "Keys": {"Id": {"N": "101"}},
            "SequenceNumber": "111",
            "StreamViewType": "NEW_IMAGES",
        }
        return {
            "Records": [
                _record("aws:dynamodb", "eventSourceARN", arn, eventName="INSERT", dynamodb=change)
            ]
        }

    return [
        (
            kind,
            f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{t}/stream/2015-06-27T00:48:05.899",
            stream(t),
        )
        for kind, t in (("dynamodb", "Orders"), ("dynamodb", "Users"), ("dynamodb", "T3"))
    ]


def kinesis() -> list[Sample]:
    def stream(name: str) -> dict[str, Any]:
        arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"
        data = {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "1",
            "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
        }
        return {"Records": [{"kinesis": data, **_record("aws:kinesis", "eventSourceARN", arn)}]}

    return [
        ("kinesis", f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{n}", stream(n))
        for n in ("clicks", "events", "s-3")
    ]


def firehose() -> list[Sample]:
    def batch(name: str) -> dict[str, Any]:
        return {
            "invocationId": "invocationIdExample",
            "deliveryStreamArn": f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}",
            "region": REGION,
            "records": [
                {
                    "recordId": "49546986683135544286507457936321625675700192471156785154",
                    "approximateArrivalTimestamp": 1495072949453,
                    "data": "SGVsbG8=",
                }
            ],
        }

    # AWS's sample events (the console's test event, `sam local generate-event`) carry no
    # deliveryStreamArn: the kind is known by the invocation id and the records.
    sample = {k: v for k, v in batch("x").items() if k != "deliveryStreamArn"}
    return [
        ("firehose", f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{n}", batch(n))
        for n in ("logs", "metrics", "d3")
    ] + [("firehose", "", sample)]


def ses() -> list[Sample]:
    def mail(dest: str) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "eventSource": "aws:ses",
                    "eventVersion": "1.0",
                    "ses": {
                        "mail": {
                            "source": "janedoe@example.com",
                            "destination": [dest],
                            "messageId": "o3vrnil0e2ic28tr",
                        },
                        "receipt": {"recipients": [dest], "spamVerdict": {"status": "PASS"}},
                    },
                }
            ]
        }

    return [("ses", "", mail(d)) for d in ("a@example.com", "b@example.com", "c@example.org")]


def _bridge(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2015-10-08T16:53:06Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/my-rule"],
        "detail": detail,
    }


def eventbridge() -> list[Sample]:
    return [
        (
            "eventbridge",
            "aws.ec2 EC2 Instance State-change Notification",
            _bridge(
                "aws.ec2",
                "EC2 Instance State-change Notification",
                {"instance-id": "i-1", "state": "running"},
            ),
        ),
        (
            "eventbridge",
            "com.shop OrderPlaced",
            _bridge(
                "com.shop",
                "OrderPlaced",
                {"orderId": "o-1", "Records": [{"eventSource": "aws:sqs"}]},
            ),
        ),
        (
            "eventbridge",
            "aws.s3 Object Created",
            _bridge("aws.s3", "Object Created", {"bucket": {"name": "b"}}),
        ),
    ]


def schedule() -> list[Sample]:
    scheduled = _bridge("aws.events", "Scheduled Event", {})
    # A sample event as AWS's tooling makes it, without `version`.
    sample = {k: v for k, v in scheduled.items() if k != "version"}
    return [("schedule", "aws.events Scheduled Event", scheduled) for _ in range(3)] + [
        ("schedule", "aws.events Scheduled Event", sample)
    ]


def cloudwatch_logs() -> list[Sample]:
    data = "H4sIAAAAAAAAAHWPwQqCQBCGX0Xm7EFtK+smZBEUgXoLCdMhFtKV3akI8d0bLYmibvPPN3wz00CJxmQnTO41whwWQRIctmEcB6sQbFC3CjW3XW8kxpOpP+OC22d1Wml1qZkQGtoMsScxaczKN3plG8zlaHIta5KqWsozoTYw3/djzwhpLwivWFGHGpAFe7DL68JlBUk+l7KSN7tCOEJ4M3/qOI49vMHj+zCKdlFqLaU2ZHV2a4Ct/an0/ivdX8oYc1UVX860fQDQiMdxRQEAAA=="
    return [("cloudwatch-logs", "", {"awslogs": {"data": data[: 40 + 20 * i]}}) for i in range(3)]


def kafka() -> list[Sample]:
    record = {
        "topic": "mytopic",
        "partition": 0,
        "offset": 15,
        "timestamp": 1545084650987,
        "key": "abcDEFghiJKLmnoPQRstuVWXyz1234==",
        "value": "SGVsbG8=",
    }
    msk_arn = f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/vpc-2priv-2pub/751d2973-a626-431c-9d4e-d7975eb44dd7-2"
    return [
        (
            "kafka",
            msk_arn,
            {
                "eventSource": "aws:kafka",
                "eventSourceArn": msk_arn,
                "bootstrapServers": "b-2.demo:9092",
                "records": {"mytopic-0": [record]},
            },
        ),
        (
            "kafka",
            msk_arn.replace("-2", "-3"),
            {
                "eventSource": "aws:kafka",
                "eventSourceArn": msk_arn.replace("-2", "-3"),
                "records": {"t-1": [record]},
            },
        ),
        (
            "kafka",
            "b-1.self.example.com:9092,b-2.self.example.com:9092",
            {
                "eventSource": "SelfManagedKafka",
                "bootstrapServers": "b-1.self.example.com:9092,b-2.self.example.com:9092",
                "records": {"mytopic-0": [record]},
            },
        ),
    ]


def mq() -> list[Sample]:
    arn = f"arn:aws:mq:{REGION}:{ACCOUNT}:broker:test:b-9bcfa592-423a-4942-879d-eb284b418fc8"
    message = {
        "messageID": "ID:b-9bcfa592-423a-4942-879d-eb284b418fc8-1.mq.us-east-1.amazonaws.com-37557-1234520418293-4:1:1:1:1",
        "messageType": "jms/text-message",
        "data": "QUJDOkFBQUE=",
    }
    return [
        ("mq", arn, {"eventSource": "aws:mq", "eventSourceArn": arn, "messages": [message]}),
        (
            "mq",
            arn + "-2",
            {"eventSource": "aws:mq", "eventSourceArn": arn + "-2", "messages": [message, message]},
        ),
        (
            "mq",
            arn,
            {
                "eventSource": "aws:rmq",
                "eventSourceArn": arn,
                "rmqMessagesByQueue": {"pizzaQueue::/": [{"data": "eyJ0aW1lb3V0Ijo="}]},
            },
        ),
    ]


def cognito() -> list[Sample]:
    def trigger(name: str) -> dict[str, Any]:
        return {
            "version": "1",
            "region": REGION,
            "userPoolId": "us-east-1_EXAMPLE",
            "userName": "jdoe",
            "callerContext": {"awsSdkVersion": "aws-sdk-js-2.6.4", "clientId": "abc"},
            "triggerSource": name,
            "request": {"userAttributes": {"email": "jdoe@example.com"}},
            "response": {},
        }

    return [
        (name, src, trigger(src))
        for name, src in (
            ("cognito", "PreSignUp_SignUp"),
            ("cognito", "PostConfirmation_ConfirmSignUp"),
            ("cognito", "TokenGeneration_HostedAuth"),
        )
    ]


def cfn_custom_resource() -> list[Sample]:
    def request(kind: str) -> dict[str, Any]:
        return {
            "RequestType": kind,
            "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
            "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/MyStack/guid",
            "RequestId": "unique id for this create request",
            "ResourceType": "Custom::TestResource",
            "LogicalResourceId": "MyTestResource",
            "ResourceProperties": {"StackName": "MyStack", "List": ["1", "2", "3"]},
        }

    return [("cfn-custom-resource", k, request(k)) for k in ("Create", "Update", "Delete")]


def direct() -> list[Sample]:
    return [
        ("direct", "resize", {"action": "resize", "width": 100, "version": "2.0"}),
        ("direct", "", {"key1": "value1", "Records": [{"eventSource": "custom:thing"}]}),
        ("direct", "", {"version": "0", "detail": {"not": "eventbridge"}, "resource": "/x"}),
        # Near misses of the warm-up shapes are direct invokes.
        ("direct", "", {"warmer": False, "concurrency": 3}),
        ("direct", "", {"source": "serverless-plugin-warmup-v2", "worker": "warm"}),
    ]


def warmup() -> list[Sample]:
    # serverless-plugin-warmup's default payload; lambda-warmer's ping and one of the
    # invocations it fans out to (`__WARMER_INVOCATION__` of `__WARMER_CONCURRENCY__`);
    # the runtime's own shape.
    return [
        ("warmup", "serverless-plugin-warmup", {"source": "serverless-plugin-warmup"}),
        ("warmup", "lambda-warmer", {"warmer": True, "concurrency": 3}),
        (
            "warmup",
            "lambda-warmer",
            {
                "warmer": True,
                "__WARMER_INVOCATION__": 2,
                "__WARMER_CONCURRENCY__": 3,
                "__WARMER_CORRELATIONID__": "1700000000000-0042",
            },
        ),
        ("warmup", "worker", {"worker": "warmup"}),
    ]


def corpus() -> list[Sample]:
    builders = (
        apigw_rest, apigw_http_v1, apigw_http, function_url, apigw_authorizer, alb, lambda_edge,
        sqs, sns, s3, dynamodb, kinesis, firehose, ses, eventbridge, schedule, cloudwatch_logs,
        kafka, mq, cognito, cfn_custom_resource, warmup, direct,
    )  # fmt: skip
    return [sample for build in builders for sample in build()]
