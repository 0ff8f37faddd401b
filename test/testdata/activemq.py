"""ActiveMQ features a STOMP application relies on, driven with Debian's
python3-stomp: selectors on queues and topics, a selector that does not
parse, message groups, exclusive consumers, consumer priority,
request/reply through a temporary queue, composite destinations,
wildcard subscriptions to topics and to queues, and the scheduler's
management topic.

Usage: /usr/bin/python3 activemq.py HOST PORT
Exits 0 when every check held; prints what failed otherwise.
"""
import queue
import sys
import time
import uuid

import stomp
from stomptest import TIMEOUT, Listener, check

HOST, PORT = sys.argv[1], int(sys.argv[2])


def connect():
    conn = stomp.Connection12([(HOST, PORT)], heartbeats=(0, 0))
    listener = Listener()
    conn.set_listener("", listener)
    conn.connect(wait=True)
    return conn, listener


def subscribed(conn, listener, dest, sub_id, **headers):
    """SUBSCRIBE with a receipt, so that what is sent next finds it."""
    rid = "sub-" + sub_id
    conn.subscribe(dest, id=sub_id, ack=headers.pop("ack", "auto"), headers=dict(headers, receipt=rid))
    got = listener.receipts.get(timeout=TIMEOUT)
    check(got == rid, "subscribed %s to %s %s" % (sub_id, dest, headers))


def sent(conn, dest, body, **headers):
    rid = str(uuid.uuid4())
    conn.send(dest, body, headers=dict(headers, receipt=rid))
    return rid


def drain_frames(listener, wait=1.0):
    """Every MESSAGE frame that arrives until none has for wait."""
    out = []
    while True:
        try:
            out.append(listener.messages.get(timeout=wait))
        except queue.Empty:
            return out


def drain(listener, wait=1.0):
    """The bodies of every message that arrives until none has for wait."""
    return [f.body for f in drain_frames(listener, wait)]


def wait_receipts(listener, n):
    for _ in range(n):
        listener.receipts.get(timeout=TIMEOUT)


run = uuid.uuid4().hex[:8]

# Selectors on a queue: each consumer gets only what it selects.
prod, pl = connect()
eu, eul = connect()
us, usl = connect()
q = "/queue/py-selectors-" + run
subscribed(eu, eul, q, "eu", selector="region = 'eu' AND amount > 100")
subscribed(us, usl, q, "us", selector="region IN ('us','ca') OR JMSPriority > 6")
sent(prod, q, "eu-big", region="eu", amount="250")
sent(prod, q, "eu-small", region="eu", amount="3")
sent(prod, q, "us", region="us")
sent(prod, q, "urgent", region="eu", amount="1", priority="9")
wait_receipts(pl, 4)
check(drain(eul) == ["eu-big"], "eu selector: only eu-big")
check(sorted(drain(usl)) == ["urgent", "us"], "us selector: us and the urgent one")
# The message nobody selects waits for a consumer that takes it.
rest, rl = connect()
subscribed(rest, rl, q, "rest")
check(drain(rl) == ["eu-small"], "unselected message waited for a consumer")

# Selectors on a topic.
t = "/topic/py-prices-" + run
live, ll = connect()
subscribed(live, ll, t, "live", selector="symbol LIKE 'RAFT%' AND price BETWEEN 10 AND 20")
sent(prod, t, "raft-15", symbol="RAFTMQ", price="15")
sent(prod, t, "raft-25", symbol="RAFTMQ", price="25")
sent(prod, t, "acme-15", symbol="ACME", price="15")
wait_receipts(pl, 3)
check(drain(ll) == ["raft-15"], "topic selector: raft-15 only")

# A durable subscription keeps its selector while its client is away.
def durable(client_id):
    conn = stomp.Connection12([(HOST, PORT)], heartbeats=(0, 0))
    listener = Listener()
    conn.set_listener("", listener)
    conn.connect(wait=True, headers={"client-id": client_id})
    return conn, listener

dt = "/topic/py-durable-" + run
dc, dl = durable("py-" + run)
subscribed(dc, dl, dt, "d", selector="amount > 100", **{"activemq.subscriptionName": "big"})
dc.disconnect()
sent(prod, dt, "small", amount="5")
sent(prod, dt, "large", amount="500")
wait_receipts(pl, 2)
dc, dl = durable("py-" + run)
subscribed(dc, dl, dt, "d", selector="amount > 100", **{"activemq.subscriptionName": "big"})
check(drain(dl) == ["large"], "durable subscription kept its selector while away")
dc.disconnect()

# A selector that does not parse is an ERROR naming the position.
bad, bl = connect()
bad.subscribe("/queue/py-bad", id="b", headers={"selector": "price > AND x", "receipt": "bad"})
err = bl.errors.get(timeout=TIMEOUT)
check(err.headers.get("message", "").startswith("invalid selector: at position 9:"), "bad selector ERROR names the position: %r" % err.headers.get("message"))

# Message groups: each group stays with one consumer, in order; when that
# consumer leaves, the group moves on whole.
g = "/queue/py-groups-" + run
c1, l1 = connect()
c2, l2 = connect()
subscribed(c1, l1, g, "g1", ack="client-individual")
subscribed(c2, l2, g, "g2", ack="client-individual")
for i in range(5):
    sent(prod, g, "A%d" % i, JMSXGroupID="A")
    sent(prod, g, "B%d" % i, JMSXGroupID="B")
wait_receipts(pl, 10)
frames1, frames2 = [], []
deadline = time.time() + TIMEOUT
while len(frames1) + len(frames2) < 10 and time.time() < deadline:
    try:
        frames1.append(l1.messages.get(timeout=0.1))
    except queue.Empty:
        pass
    try:
        frames2.append(l2.messages.get(timeout=0.1))
    except queue.Empty:
        pass
b1 = [f.body for f in frames1]
b2 = [f.body for f in frames2]
check(sorted([b1, b2]) == [["A%d" % i for i in range(5)], ["B%d" % i for i in range(5)]],
      "groups stay whole and in order: %s %s" % (b1, b2))
# c1 acknowledges its first two and leaves; c2 gets the other three of
# c1's group, in order, then the group's next message.
for f in frames1[:2]:
    c1.ack(f.headers["ack"])
time.sleep(0.5)
c1.disconnect()
moved = frames1[0].body[0]
sent(prod, g, moved + "5", JMSXGroupID=moved)
got = drain(l2)
check(got == [moved + "2", moved + "3", moved + "4", moved + "5"], "group %s moved on whole, in order: %s" % (moved, got))

# Exclusive consumers: the first gets everything; the next takes over
# when it goes.
x = "/queue/py-exclusive-" + run
e1, el1 = connect()
e2, el2 = connect()
subscribed(e1, el1, x, "x1", **{"activemq.exclusive": "true"})
subscribed(e2, el2, x, "x2", **{"activemq.exclusive": "true"})
for i in range(4):
    sent(prod, x, "x%d" % i)
wait_receipts(pl, 4)
check(drain(el1) == ["x0", "x1", "x2", "x3"] and drain(el2, 0.2) == [], "exclusive: all to the first")
e1.disconnect()
sent(prod, x, "x4")
check(drain(el2) == ["x4"], "exclusive: the second took over")

# Consumer priority: the high one fills its prefetch first.
p = "/queue/py-priority-" + run
lo, lol = connect()
hi, hil = connect()
subscribed(lo, lol, p, "lo", ack="client-individual")
subscribed(hi, hil, p, "hi", ack="client-individual", **{"activemq.priority": "9", "activemq.prefetchSize": "2"})
for i in range(4):
    sent(prod, p, "p%d" % i)
wait_receipts(pl, 4)
check(drain(hil) == ["p0", "p1"] and drain(lol) == ["p2", "p3"], "priority: high first, then low")

# Request/reply with a temporary queue: the requester's reply-to names
# its own /temp-queue/; the responder sends to the name it gets.
requester, rql = connect()
responder, rsl = connect()
requests = "/queue/py-requests-" + run
subscribed(requester, rql, "/temp-queue/replies", "replies")
subscribed(responder, rsl, requests, "req")
sent(requester, requests, "what time is it", **{"reply-to": "/temp-queue/replies", "correlation-id": "q1"})
wait_receipts(rql, 1)
req = rsl.messages.get(timeout=TIMEOUT)
reply_to = req.headers.get("reply-to", "")
check(reply_to.startswith("/remote-temp-queue/") and req.headers.get("correlation-id") == "q1",
      "the responder got reply-to %r and the correlation-id" % reply_to)
sent(responder, reply_to, "noon", **{"correlation-id": req.headers["correlation-id"]})
wait_receipts(rsl, 1)
rep = rql.messages.get(timeout=TIMEOUT)
check(rep.body == "noon" and rep.headers.get("correlation-id") == "q1" and rep.headers.get("destination") == "/temp-queue/replies",
      "the reply reached the requester's temporary queue: %r %r" % (rep.body, rep.headers))
# Another connection's /temp-queue/replies is its own, not the requester's.
other, ol = connect()
subscribed(other, ol, "/temp-queue/replies", "mine")
check(drain(ol, 0.5) == [], "another connection's temporary queue of the same name is separate")
other.disconnect()
# When the requester goes, its temporary queue goes with it.
requester.disconnect()
time.sleep(0.5)
responder.send(reply_to, "too late", headers={"receipt": "late"})
err = rsl.errors.get(timeout=TIMEOUT)
check("temporary destination does not exist" in err.headers.get("message", ""),
      "a reply to a closed connection's temporary queue is refused: %r" % err.headers.get("message"))

# Composite destinations: one SEND, a copy in each.
cq1, cq2, ct = "/queue/py-c1-" + run, "/queue/py-c2-" + run, "/topic/py-c3-" + run
cc, ccl = connect()
subscribed(cc, ccl, cq1, "c1")
subscribed(cc, ccl, cq2, "c2")
subscribed(cc, ccl, ct, "c3")
sent(prod, ",".join([cq1, cq2, ct]), "everywhere")
wait_receipts(pl, 1)
frames = drain_frames(ccl)
check(sorted(f.headers["destination"] for f in frames) == sorted([cq1, cq2, ct]) and all(f.body == "everywhere" for f in frames),
      "composite SEND reached each destination once: %s" % [(f.headers["destination"], f.body) for f in frames])

# Wildcard topic subscriptions: '*' one element, '>' one or more.
wroot = "/topic/py-w-" + run
wc, wl = connect()
subscribed(wc, wl, wroot + ".>", "w")
for name in (".eu", ".eu.paid", ""):
    sent(prod, wroot + name, "w" + name)
wait_receipts(pl, 3)
check(drain(wl) == ["w.eu", "w.eu.paid"], "wildcard subscription got the matching topics")

# Wildcard queue subscriptions: one subscription consumes from every
# matching queue, those made after it too, with one cumulative ACK.
qroot = "/queue/py-wq-" + run
sent(prod, qroot + ".a", "a1")
sent(prod, qroot + ".a", "a2")
sent(prod, qroot, "root")  # '>' needs one element more: not matched
wait_receipts(pl, 3)
wq, wql = connect()
subscribed(wq, wql, qroot + ".>", "wq", ack="client")
sent(prod, qroot + ".b.c", "bc1")  # a queue made after the SUBSCRIBE
wait_receipts(pl, 1)
frames = drain_frames(wql)
got = [(f.headers["destination"], f.body) for f in frames]
check(sorted(got) == [(qroot + ".a", "a1"), (qroot + ".a", "a2"), (qroot + ".b.c", "bc1")]
      and [b for _, b in got if b.startswith("a")] == ["a1", "a2"]
      and all(f.headers["subscription"] == "wq" for f in frames),
      "wildcard queue subscription got each matching queue's messages, in order: %s" % got)
if frames:
    rid = str(uuid.uuid4())
    wq.ack(frames[-1].headers["ack"], receipt=rid)  # cumulative: all three
    check(wql.receipts.get(timeout=TIMEOUT) == rid, "cumulative ACK across queues receipted")
wq.disconnect()
after, afl = connect()
subscribed(after, afl, qroot + ".>", "after")
subscribed(after, afl, qroot, "root")
check(drain(afl) == ["root"], "the cumulative ACK took every queue's message; the unmatched one waited")

# Scheduler management, as ActiveMQ's: BROWSE the scheduled messages to a
# temporary queue, then REMOVE one by its scheduledJobId before it fires.
sq = "/queue/py-sched-" + run
sc, scl = connect()
subscribed(sc, scl, sq, "sched")
sp, spl = connect()  # a producer of its own: its receipts are these two
sent(sp, sq, "cancel-me", AMQ_SCHEDULED_DELAY="2000")
sent(sp, sq, "keep-me", AMQ_SCHEDULED_DELAY="2000")
wait_receipts(spl, 2)
mgr, ml = connect()
subscribed(mgr, ml, "/temp-queue/sched-browse", "browse")
sent(mgr, "/topic/ActiveMQ.Scheduler.Management", "", AMQ_SCHEDULER_ACTION="BROWSE",
     **{"reply-to": "/temp-queue/sched-browse"})
wait_receipts(ml, 1)
jobs = {f.body: f.headers.get("scheduledJobId") for f in drain_frames(ml, wait=0.5)}
check(jobs.get("cancel-me") and jobs.get("keep-me"), "BROWSE showed both scheduled messages with their job ids: %s" % jobs)
sent(mgr, "/topic/ActiveMQ.Scheduler.Management", "", AMQ_SCHEDULER_ACTION="REMOVE",
     scheduledJobId=jobs.get("cancel-me", ""))
wait_receipts(ml, 1)
check(drain(scl, wait=3.5) == ["keep-me"], "the removed message never came, the other did")

for c in (prod, eu, us, rest, live, c2, e2, lo, hi, cc, wc, after, sc, sp, mgr):
    c.disconnect()
print("all checks passed")
