# tests/integration/stomp_flow_control_test.py — STOMP input flow control as configured
# (stomp.max_unconfirmed_sends, stomp.write_high_watermark), raw frames on one socket.
#
# With sync: batch(1000) a persistent SEND is confirmed about a second after it is read. Behind
# it on the same connection, a non-persistent SEND to a queue that the connection itself
# subscribes to comes back as a MESSAGE at once when the broker keeps reading, so it arrives
# before the first SEND's RECEIPT; with max_unconfirmed_sends: 1 the broker reads nothing more
# until that confirmation, so the RECEIPT comes first. Order, not timing, is asserted.

import os
import subprocess
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase, config_override  # noqa: E402

SLOW_JOURNAL = {"store": {"type": "journal", "dir": "data", "sync": "batch(1000)"}}


class FlowControlTest(BrokerTestCase):

    def first_of_receipt_and_message(self):
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/fc.echo", "receipt": "r-sub"})
        raw.expect("RECEIPT")
        raw.send(sbtest.encode_frame("SEND", {"destination": "/queue/fc.slow", "persistent": "true",
                                              "receipt": "r-slow"}, b"slow")
                 + sbtest.encode_frame("SEND", {"destination": "/queue/fc.echo"}, b"echo"))
        frames = [raw.read_frame(timeout=10), raw.read_frame(timeout=10)]
        self.assertEqual(sorted(f.command for f in frames), ["MESSAGE", "RECEIPT"], f"{frames!r}")
        return frames[0].command

    @config_override(SLOW_JOURNAL)
    def test_the_broker_reads_on_while_sends_await_confirmation_by_default(self):
        self.assertEqual(self.first_of_receipt_and_message(), "MESSAGE",
                         "the second SEND was not read while the first awaited its fsync")

    @config_override(dict(SLOW_JOURNAL, stomp={"max_unconfirmed_sends": 1, "write_high_watermark": "64 KiB"}))
    def test_max_unconfirmed_sends_stops_reading_until_confirmed(self):
        self.assertEqual(self.first_of_receipt_and_message(), "RECEIPT",
                         "with max_unconfirmed_sends: 1 a SEND was read before the one before it "
                         "was confirmed")

    def test_watermark_settings_are_validated_by_check(self):
        for body, key in (("  write_high_watermark: 100\n", "stomp.write_high_watermark"),
                          ("  max_unconfirmed_sends: 0\n", "stomp.max_unconfirmed_sends")):
            path = os.path.join(self.broker.dir, "bad.yaml")
            with open(path, "w") as f:
                f.write("stomp:\n" + body)
            r = subprocess.run([sbtest.BIN, "check", "-c", path], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"bad.yaml:2:", r.stderr)
            self.assertIn(key, r.stderr)
            self.assertNotIn("unknown key", r.stderr)


if __name__ == "__main__":
    sbtest.main()
