"""Queue browsers as ActiveMQ has them over STOMP (SUBSCRIBE browser:true),
driven with Debian's python3-stomp: the browser sees every message of the
queue in consumer order, then a browser:end MESSAGE, and consumes nothing.

Usage: /usr/bin/python3 browse.py HOST PORT
Exits 0 when every check held; prints what failed otherwise.
"""
import queue
import sys
import time
import uuid

import stomp
from stomptest import TIMEOUT, Listener, check

HOST, PORT = sys.argv[1], int(sys.argv[2])


def connect(version="1.2"):
    cls = stomp.Connection12 if version == "1.2" else stomp.Connection11
    conn = cls([(HOST, PORT)], heartbeats=(0, 0))
    listener = Listener()
    conn.set_listener("", listener)
    conn.connect(wait=True)
    return conn, listener


def receipt(listener, rid):
    got = listener.receipts.get(timeout=TIMEOUT)
    check(got == rid, "receipt %s" % rid)


def browse(conn, listener, dest, sub_id, **headers):
    """Browse dest: the frames before the end marker, and the marker."""
    conn.subscribe(dest, id=sub_id, ack=headers.pop("ack", "auto"),
                   headers=dict(headers, browser="true"))
    frames = []
    while True:
        f = listener.messages.get(timeout=TIMEOUT)
        if f.headers.get("browser") == "end":
            return frames, f
        frames.append(f)


def no_more(listener, wait=0.5):
    try:
        f = listener.messages.get(timeout=wait)
    except queue.Empty:
        return True
    print("unexpected:", f.headers, f.body)
    return False


run = uuid.uuid4().hex[:8]
q = "/queue/py-browse-" + run

# Five messages, one of them urgent: consumers get it first.
prod, pl = connect()
for i in range(5):
    rid = "send-%d" % i
    headers = {"receipt": rid, "n": str(i)}
    if i == 3:
        headers["priority"] = "9"
    prod.send(q, "m%d" % i, headers=headers)
    receipt(pl, rid)
order = ["m3", "m0", "m1", "m2", "m4"]

# A browser sees them all in consumer order, then the end marker.
br, bl = connect()
frames, end = browse(br, bl, q, "br", ack="client-individual")
check([f.body for f in frames] == order, "browsed in consumer order: %s" % [f.body for f in frames])
check(all(f.headers.get("subscription") == "br" and f.headers.get("destination") == q for f in frames),
      "browsed MESSAGEs name the subscription and queue")
check(end.headers.get("message-id") == "0" and end.headers.get("subscription") == "br" and
      end.headers.get("destination") == q and end.body in ("", b""),
      "end marker: browser:end, message-id 0, the subscription and queue, no body: %s %r" % (end.headers, end.body))
# An ACK of a browsed message is harmless: receipted, nothing consumed.
br.ack(frames[0].headers["ack"], receipt="ack-browsed")
receipt(bl, "ack-browsed")
check(no_more(bl), "the browser gets nothing after the end marker")
check(bl.errors.empty(), "no ERROR on the browser's connection")
br.unsubscribe("br", headers={"receipt": "unsub"})
receipt(bl, "unsub")

# Browsing again, with a selector and a STOMP 1.1 client.
br11, bl11 = connect("1.1")
frames, end = browse(br11, bl11, q, "sel", selector="n >= 2")
check([f.body for f in frames] == ["m3", "m2", "m4"], "browsed with a selector: %s" % [f.body for f in frames])
br11.ack(frames[0].headers["message-id"], "sel", receipt="ack-11")
receipt(bl11, "ack-11")

# A normal consumer still gets all five, first deliveries, in order.
cons, cl = connect()
cons.subscribe(q, id="c", ack="client-individual", headers={"receipt": "sub-c"})
receipt(cl, "sub-c")
got = []
deadline = time.time() + TIMEOUT
while len(got) < 5 and time.time() < deadline:
    try:
        got.append(cl.messages.get(timeout=0.5))
    except queue.Empty:
        pass
check([f.body for f in got] == order, "the consumer got all five after the browses: %s" % [f.body for f in got])
check(all("redelivered" not in f.headers and f.headers.get("delivery-count") == "1" for f in got),
      "first deliveries: not redelivered, delivery-count 1")
for i, f in enumerate(got):
    cons.ack(f.headers["ack"], receipt="ack-c%d" % i)
    receipt(cl, "ack-c%d" % i)

# The queue is empty now: a browse shows just the end marker.
frames, end = browse(br, bl, q, "br2")
check(frames == [], "an empty queue browses as the end marker alone")

# Browsing a topic is an ERROR.
bt, btl = connect()
bt.subscribe("/topic/py-browse-" + run, id="t", headers={"browser": "true"})
err = btl.errors.get(timeout=TIMEOUT)
check(err.headers.get("message") == "browsing needs a queue", "topic browse refused: %r" % err.headers.get("message"))

for c in (prod, br, br11, cons):
    c.disconnect()
