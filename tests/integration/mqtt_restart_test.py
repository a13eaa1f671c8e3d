#!/usr/bin/python3
# tests/integration/mqtt_restart_test.py — what MQTT clients leave in the broker survives it:
# a retained message published with mosquitto_pub (QoS 1, confirmed by PUBACK) is there after
# a kill -9 and a restart; a cleared one stays cleared; a persistent session (paho, clean
# session off) finds its subscription and the QoS 1 messages queued while it was away.
import os
import queue
import threading
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

HOST = "127.0.0.1"


def pub(port, topic, message, retain=True):
    args = ["mosquitto_pub", "-h", HOST, "-p", str(port), "-q", "1", "-t", topic, "-V", "5"]
    args += ["-r"] if retain else []
    args += ["-n"] if message is None else ["-m", message]
    subprocess.run(args, check=True, timeout=10)


def first_message(port, topic):
    """The first message on `topic` within 3 s (a retained one arrives at once), or None."""
    r = subprocess.run(["mosquitto_sub", "-h", HOST, "-p", str(port), "-t", topic, "-C", "1", "-W", "3",
                        "-V", "5", "-F", "%r %p"], capture_output=True, text=True, timeout=10)
    out = r.stdout.strip()
    return out or None


def paho_session(port, client_id, on_message=None):
    """A paho 3.1.1 client with a persistent session; returns (client, session_present)."""
    import paho.mqtt.client as mqtt
    connected = queue.Queue()
    c = mqtt.Client(client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311)
    c.on_connect = lambda cl, ud, flags, rc: connected.put((rc, flags.get("session present", 0)))
    if on_message:
        c.on_message = on_message
    c.connect(HOST, port, keepalive=30)
    c.loop_start()
    rc, present = connected.get(timeout=5)
    if rc != 0:
        raise AssertionError(f"CONNACK {rc}")
    return c, present


class RestartTest(unittest.TestCase):
    def series(self):
        s = sbtest.BrokerSeries(mqtt=True, prefix="sbmqttrestart-")
        s.extra = s.journal()
        return s

    def test_persistent_session_survives_kill_9(self):
        with self.series() as brokers:
            b = brokers.start()
            c, present = paho_session(b.mqtt_port, "meter-42")
            self.assertEqual(present, 0)
            subscribed = threading.Event()
            c.on_subscribe = lambda *a: subscribed.set()
            c.subscribe("meters/42/cmd", qos=1)
            self.assertTrue(subscribed.wait(5))
            c.disconnect()
            c.loop_stop()
            for i in range(3):
                pub(b.mqtt_port, "meters/42/cmd", f"cmd-{i}", retain=False)   # PUBACKed: confirmed
            b.kill()

            b = brokers.start()
            got = queue.Queue()
            c, present = paho_session(b.mqtt_port, "meter-42", lambda cl, ud, m: got.put(m.payload.decode()))
            self.assertEqual(present, 1, "the session did not survive the restart")
            self.assertEqual([got.get(timeout=5) for _ in range(3)], ["cmd-0", "cmd-1", "cmd-2"])
            pub(b.mqtt_port, "meters/42/cmd", "live", retain=False)          # still subscribed
            self.assertEqual(got.get(timeout=5), "live")
            c.disconnect()
            c.loop_stop()
            b.stop()

    def test_retained_messages_survive_kill_9(self):
        with self.series() as brokers:
            b = brokers.start()
            pub(b.mqtt_port, "plant/7/state", "running")
            pub(b.mqtt_port, "plant/8/state", "first")
            pub(b.mqtt_port, "plant/8/state", "second")   # replaces
            pub(b.mqtt_port, "plant/9/state", "doomed")
            pub(b.mqtt_port, "plant/9/state", None)       # cleared
            self.assertEqual(first_message(b.mqtt_port, "plant/7/state"), "1 running")
            b.kill()

            b = brokers.start()
            self.assertEqual(first_message(b.mqtt_port, "plant/7/state"), "1 running")
            self.assertEqual(first_message(b.mqtt_port, "plant/8/state"), "1 second")
            self.assertIsNone(first_message(b.mqtt_port, "plant/9/state"))
            b.stop()


if __name__ == "__main__":
    sbtest.main()
