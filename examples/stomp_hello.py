#!/usr/bin/python3
# examples/stomp_hello.py — send and receive one message through a local Switchboard over STOMP
# (python3-stomp). Start the broker first: `make run`.
import sys
import threading

import stomp

host, port = "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 61613
received = threading.Event()


class Printer(stomp.ConnectionListener):
    def on_message(self, frame):
        print(f"received on {frame.headers['destination']}: {frame.body}")
        received.set()


conn = stomp.Connection([(host, port)])
conn.set_listener("", Printer())
conn.connect(wait=True)
conn.subscribe("/queue/hello", id="1", ack="auto")
conn.send("/queue/hello", "hello from STOMP", headers={"persistent": "true"})
ok = received.wait(5)
conn.disconnect()
sys.exit(0 if ok else 1)
