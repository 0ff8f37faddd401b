"""Reach a raftmq group through a list of all its members with Debian's
python3-stomp, as an application would, before and after its leader dies.

Usage: /usr/bin/python3 failover.py HOST:PORT,HOST:PORT,... QUEUE
Prints "CONNECTED host:port" for each connection, "SENT before" once the
first message is receipted, then waits for a line on stdin (the test kills
the leader), connects again with the same list, sends "after", and
receives both. Exits 0 when every check held.
"""
import queue
import sys

import stomp

HOSTS = [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in sys.argv[1].split(","))]
QUEUE = sys.argv[2]
TIMEOUT = 30


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame):
        print("ERROR frame:", frame.headers.get("message"), flush=True)


def fail(what):
    print("FAIL:", what, flush=True)
    sys.exit(1)


def connect():
    # The list is tried in order; a follower refuses the connection, so
    # the client moves on to the next address at once.
    conn = stomp.Connection12(
        host_and_ports=HOSTS,
        heartbeats=(0, 0),
        reconnect_attempts_max=50,
        reconnect_sleep_initial=0.1,
        reconnect_sleep_increase=0.0,
        reconnect_sleep_jitter=0.0,
        reconnect_sleep_max=0.2,
    )
    listener = Listener()
    conn.set_listener("l", listener)
    conn.connect(wait=True)
    host, port = conn.transport.current_host_and_port
    print("CONNECTED %s:%d" % (host, port), flush=True)
    return conn, listener


def send(conn, listener, body):
    conn.send(QUEUE, body, receipt="r-" + body)
    try:
        got = listener.receipts.get(timeout=TIMEOUT)
    except queue.Empty:
        fail("no receipt for " + body)
    if got != "r-" + body:
        fail("receipt %r for %r" % (got, body))


conn, listener = connect()
send(conn, listener, "before")
print("SENT before", flush=True)

sys.stdin.readline()  # the test killed the leader
try:
    conn.disconnect()
except Exception:
    pass

conn, listener = connect()
send(conn, listener, "after")
conn.subscribe(QUEUE, id="s1", ack="client-individual")
bodies = []
for _ in range(2):
    try:
        m = listener.messages.get(timeout=TIMEOUT)
    except queue.Empty:
        fail("received only %r" % bodies)
    bodies.append(m.body)
    conn.ack(m.headers["ack"])
if bodies != ["before", "after"]:
    fail("received %r, want ['before', 'after']" % bodies)
print("GOT before,after", flush=True)
conn.disconnect()
