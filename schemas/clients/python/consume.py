#!/usr/bin/env python3
"""Read the shop's topics with the stock Confluent Python client.

Every record is Avro in the Confluent wire format (magic byte, schema id,
body), so AvroDeserializer at its defaults decodes it with the writer's
schema, fetched from the registry by id. The CloudEvents metadata is in
the record headers (ce_type, ce_id, ce_subject, ...).

Reads each topic from the beginning (or from --since-ms) up to the end
offsets seen at start, prints `topic records=N decoded=N failed=N` per
topic and a JSON summary; exits 1 if a record failed or a topic was empty.

    pip install -r requirements.txt
    python3 consume.py --brokers 127.0.0.1:9092 --registry-url http://127.0.0.1:8081

On a broker with SASL_SSL (SCRAM-SHA-512 over TLS), as the shop's CI broker
and compose have: --sasl-user NAME --ca-file CA.pem, the password in the
environment variable KAFKA_PASSWORD (never on the command line).
"""
import argparse
import json
import os
import sys
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

# The event-log topics, as in schemas/topics.go.
SHOP_TOPICS = [
    "shop.customers.v1", "shop.catalog.products.v1", "shop.inventory.stock.v1",
    "shop.carts.v1", "shop.orders.v1", "shop.payments.v1",
    "shop.payments.sepa-requests.v1", "shop.billing.invoices.v1",
    "shop.notifications.emails.v1", "shop.reviews.v1",
]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", default="127.0.0.1:9092")
    p.add_argument("--registry-url", default="http://127.0.0.1:8081")
    p.add_argument("--since-ms", type=int, help="start at this timestamp (ms since the epoch), not the beginning")
    p.add_argument("--sasl-user", help="SASL SCRAM-SHA-512 user (password: $KAFKA_PASSWORD); connects over TLS")
    p.add_argument("--ca-file", help="PEM file of the CA of the brokers' certificates (with --sasl-user)")
    p.add_argument("topics", nargs="*", default=SHOP_TOPICS)
    args = p.parse_args()

    # Library defaults: the deserializer looks the writer's schema up by the
    # id in each record.
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": args.registry_url}))
    # Partitions are assigned by hand, so the group is never joined and
    # nothing is committed; librdkafka wants a group id all the same.
    conf = {"bootstrap.servers": args.brokers, "group.id": f"shop-clients-py-{uuid.uuid4()}",
            "enable.auto.commit": False, "enable.partition.eof": True}
    if args.sasl_user:
        conf.update({"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                     "sasl.username": args.sasl_user, "sasl.password": os.environ.get("KAFKA_PASSWORD", "")})
        if args.ca_file:
            conf["ssl.ca.location"] = args.ca_file
    consumer = Consumer(conf)

    # Where to start and stop in each partition: [start, end) with end the
    # high watermark now, start the offset of the first record at or after
    # --since-ms (none: end), or the low watermark.
    start, end = {}, {}
    for topic in args.topics:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for n in partitions:
            tp = TopicPartition(topic, n)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            start[(topic, n)], end[(topic, n)] = low, high
        if args.since_ms is not None:
            asked = [TopicPartition(topic, n, args.since_ms) for n in partitions]
            for tp in consumer.offsets_for_times(asked, timeout=10):
                key = (topic, tp.partition)
                start[key] = tp.offset if tp.offset >= 0 else end[key]
    pending = {k for k in start if start[k] < end[k]}
    consumer.assign([TopicPartition(t, n, start[(t, n)]) for (t, n) in pending])

    counts = {t: {"records": 0, "decoded": 0, "failed": 0} for t in args.topics}
    shown = set()
    while pending:
        msg = consumer.poll(10)
        if msg is None:
            continue
        topic, key = msg.topic(), (msg.topic(), msg.partition())
        if msg.error() and msg.error().code() == KafkaError._PARTITION_EOF:
            pending.discard(key)  # read to the end
            continue
        if msg.error():
            sys.exit(f"consume: {msg.error()}")
        if msg.offset() >= end[key]:
            pending.discard(key)  # written after we started
            continue
        c = counts[topic]
        c["records"] += 1
        try:
            event = deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))
            c["decoded"] += 1
            if topic not in shown:  # show one event a topic, so you see it works
                shown.add(topic)
                headers = {k: v.decode() for k, v in msg.headers() or []}
                fields = dict(list(event.items())[:3])
                print(f"{topic}: ce_type={headers.get('ce_type')} {fields}")
        except Exception as e:
            c["failed"] += 1
            if c["failed"] <= 3:  # the first few failures of a topic
                print(f"{topic}/{msg.partition()}@{msg.offset()}: {e}", file=sys.stderr)
        if msg.offset() + 1 >= end[key]:
            pending.discard(key)
    consumer.close()

    for topic, c in counts.items():
        print(f"{topic} records={c['records']} decoded={c['decoded']} failed={c['failed']}")
    ok = all(c["records"] > 0 and c["failed"] == 0 for c in counts.values())
    print(json.dumps({"client": "python confluent-kafka", "ok": ok, "topics": counts}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
