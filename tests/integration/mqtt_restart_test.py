#!/usr/bin/python3
# tests/integration/mqtt_restart_test.py — what MQTT clients leave in the broker survives it:
# a retained message published with mosquitto_pub (QoS 1, confirmed by PUBACK) is there after
# a kill -9 and a restart; a cleared one stays cleared.
import os
import subprocess
import sys
import tempfile
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


class RestartTest(unittest.TestCase):
    def test_retained_messages_survive_kill_9(self):
        work = tempfile.mkdtemp(prefix="sbmqttrestart-")
        cfg = {"store": {"type": "journal", "dir": os.path.join(work, "data"), "sync": "always"}}
        brokers = []
        try:
            b = sbtest.Broker(cfg, workdir=work, mqtt=True)
            brokers.append(b)
            b.start()
            pub(b.mqtt_port, "plant/7/state", "running")
            pub(b.mqtt_port, "plant/8/state", "first")
            pub(b.mqtt_port, "plant/8/state", "second")   # replaces
            pub(b.mqtt_port, "plant/9/state", "doomed")
            pub(b.mqtt_port, "plant/9/state", None)       # cleared
            self.assertEqual(first_message(b.mqtt_port, "plant/7/state"), "1 running")
            b.kill()

            b = sbtest.Broker(cfg, workdir=work, mqtt=True)
            brokers.append(b)
            b.start()
            self.assertEqual(first_message(b.mqtt_port, "plant/7/state"), "1 running")
            self.assertEqual(first_message(b.mqtt_port, "plant/8/state"), "1 second")
            self.assertIsNone(first_message(b.mqtt_port, "plant/9/state"))
            b.stop()
        except Exception:
            for x in brokers:
                print(x.describe(), file=sys.stderr)
            raise
        finally:
            for x in brokers:
                x.kill()


if __name__ == "__main__":
    sbtest.main()
