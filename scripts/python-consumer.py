#!/usr/bin/env python3
"""A consumer of Agora's events written with another stack than the services.

It reads the contract (the AsyncAPI document the gateway or the embedded app
serves), binds a queue of its own (exclusive: gone when it disconnects) to the
events exchange for every channel's routing key, and takes every message as a
CloudEvent with the CloudEvents SDK (structured mode: the body is the
envelope as JSON). Each event is checked against the contract and the
schemas it names:

- the message's content type is the contract's;
- its type is one of the contract's messages, on that message's channel;
- its `dataschema` is an absolute http(s) URI, fetched as it is, and its
  `data` is valid against that JSON Schema (formats checked);
- the whole envelope is valid against `/schemas/envelope.json`;
- the `cloudEvents:*` headers repeat the envelope's attributes.

It prints `ready` once its queue is bound, then a JSON report on its last
line, and exits 0 once it has read every event type of the contract and
found none invalid; 1 when one was invalid or the time ran out first.

    python-consumer.py --contract http://127.0.0.1:8080/api/asyncapi.json \\
        --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --exchange agora.events
"""

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request

import jsonschema
import pika
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq_event


def fetch_json(url, cache):
    if url not in cache:
        with urllib.request.urlopen(url, timeout=10) as answer:
            cache[url] = json.load(answer)
    return cache[url]


def validator(schema):
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


class Contract:
    """What the AsyncAPI document says travels: type -> (routing key, message)."""

    def __init__(self, doc):
        self.content_type = doc["defaultContentType"]
        self.messages = {}
        for channel in doc["channels"].values():
            for ref in channel["messages"].values():
                name = ref["$ref"].rsplit("/", 1)[-1]
                message = doc["components"]["messages"][name]
                self.messages[message["name"]] = (channel["address"], message)

    def routing_keys(self):
        return sorted({key for key, _ in self.messages.values()})


def check(body, properties, routing_key, contract, envelope_schema, schemas):
    """The problems of one message (none if it is valid)."""
    problems = []
    content_type = properties.content_type
    if content_type != contract.content_type:
        problems.append(f"content type {content_type!r}, not {contract.content_type!r}")
    headers = {
        k: v.decode() if isinstance(v, bytes) else str(v)
        for k, v in (properties.headers or {}).items()
    }
    event = from_rabbitmq_event(
        RabbitMQMessage(headers=headers, content_type=content_type, body=body)
    )
    kind = event.get_type()
    if kind not in contract.messages:
        return kind, problems + [f"type {kind!r} is not in the contract"]
    channel, message = contract.messages[kind]
    if routing_key != channel:
        problems.append(f"routing key {routing_key!r}, not the channel {channel!r}")
    envelope = json.loads(body)
    for error in validator(envelope_schema).iter_errors(envelope):
        problems.append(f"envelope: {error.message}")
    for header in message["headers"].get("required", []):
        attribute = header.split(":", 1)[-1]
        if headers.get(header) != str(envelope.get(attribute)):
            problems.append(f"header {header} is {headers.get(header)!r}, not {envelope.get(attribute)!r}")
    uri = event.get_dataschema() or ""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return kind, problems + [f"dataschema {uri!r} is not an absolute http(s) URI"]
    try:
        schema = fetch_json(uri, schemas)
    except (OSError, ValueError) as error:
        return kind, problems + [f"dataschema {uri}: {error}"]
    for error in validator(schema).iter_errors(event.get_data()):
        problems.append(f"data: {error.message} at {list(error.absolute_path)}")
    return kind, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contract", required=True, help="URL of the AsyncAPI document")
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--exchange", required=True, help="the events exchange (prefix + events)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to read every type in")
    args = parser.parse_args()

    schemas = {}
    contract = Contract(fetch_json(args.contract, schemas))
    envelope_url = urllib.parse.urljoin(args.contract, "/schemas/envelope.json")
    envelope_schema = fetch_json(envelope_url, schemas)

    connection = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = connection.channel()
    queue = channel.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
    for key in contract.routing_keys():
        channel.queue_bind(queue=queue, exchange=args.exchange, routing_key=key)
    print("ready", flush=True)

    read, invalid = {}, []
    deadline = time.monotonic() + args.timeout
    for method, properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=1):
        if method is not None:
            try:
                kind, problems = check(
                    body, properties, method.routing_key, contract, envelope_schema, schemas
                )
            except Exception as error:  # an unparsable message is a finding too
                kind, problems = method.routing_key, [f"{type(error).__name__}: {error}"]
            read[kind] = read.get(kind, 0) + 1
            invalid.extend(f"{kind}: {p}" for p in problems)
        if set(contract.messages) <= set(read) or time.monotonic() > deadline:
            break
    connection.close()

    missing = sorted(set(contract.messages) - set(read))
    print(json.dumps({"read": read, "missing": missing, "invalid": invalid}), flush=True)
    return 0 if not missing and not invalid else 1


if __name__ == "__main__":
    sys.exit(main())
