# tests/integration/stomp_auth_test.py — STOMP logins against a users file written by
# `switchboard passwd`: anonymous refused, wrong passwords refused, the right one works end to end.

import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase  # noqa: E402

USERS = {"alice": "s3cret-Alice!", "bob": "bob pass with spaces"}


def passwd_line(user, password):
    proc = subprocess.run([sbtest.BIN, "passwd", user], input=password + "\n",
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"switchboard passwd {user} exited {proc.returncode}: "
                             f"{proc.stderr.strip()}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if len(lines) != 1:
        raise AssertionError(f"switchboard passwd printed {len(lines)} lines: {proc.stdout!r}")
    return lines[0]


class AuthTest(BrokerTestCase):

    def setUp(self):
        # The users file must exist before the broker starts: write it in a directory of our own.
        self.lines = {user: passwd_line(user, pw) for user, pw in USERS.items()}
        users_dir = tempfile.TemporaryDirectory(prefix="sbtest-users-")
        self.addCleanup(users_dir.cleanup)
        self.users_dir = users_dir.name
        users_file = os.path.join(self.users_dir, "users")
        with open(users_file, "w") as f:
            f.write("# made by switchboard passwd\n")
            for line in self.lines.values():
                f.write(line + "\n")
        self.broker_config = {"security": {"allow_anonymous": False, "users_file": users_file}}
        super().setUp()

    def refused(self, headers, version="1.2", what=""):
        raw = self.raw()
        hdrs = {"accept-version": version, "host": "localhost"}
        hdrs.update(headers)
        raw.send_frame("CONNECT", hdrs)
        frame = self.assert_error_then_close(raw, what=what)
        return frame

    def test_passwd_lines_name_the_user_and_hide_the_password(self):
        for user, password in USERS.items():
            line = self.lines[user]
            self.assertTrue(line.startswith(user + ":"), f"line for {user}: {line!r}")
            self.assertNotIn(password, line, "the password is stored in clear")
        # Salted: the same password twice gives two different lines.
        self.assertNotEqual(passwd_line("alice", USERS["alice"]), self.lines["alice"])

    def test_passwd_without_password_fails(self):
        proc = subprocess.run([sbtest.BIN, "passwd", "carol"], input="", capture_output=True,
                              text=True, timeout=30)
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(proc.stdout.strip(), "")

    def test_anonymous_is_refused(self):
        self.refused({}, what="no login")

    def test_anonymous_stomp_10_is_refused(self):
        raw = self.raw()
        raw.send_frame("CONNECT", {})
        self.assert_error_then_close(raw, what="STOMP 1.0 without login")

    def test_wrong_password_is_refused(self):
        self.refused({"login": "alice", "passcode": "wrong"}, what="wrong password")

    def test_other_users_password_is_refused(self):
        self.refused({"login": "alice", "passcode": USERS["bob"]}, what="bob's password for alice")

    def test_unknown_user_is_refused(self):
        self.refused({"login": "mallory", "passcode": "x"}, what="unknown user")

    def test_empty_password_is_refused(self):
        self.refused({"login": "alice", "passcode": ""}, what="empty password")

    def test_stomp_py_wrong_password_gets_error(self):
        client = self.client(connect=False)
        with self.assertRaises(AssertionError):
            client.connect(login="alice", passcode="nope")
        self.assertFalse(client.errors.empty(), "no ERROR frame for a wrong password")
        self.assertTrue(client.disconnected.wait(sbtest.WAIT), "socket not closed after ERROR")

    def test_right_password_works_end_to_end(self):
        alice = self.client(login="alice", passcode=USERS["alice"])
        bob = self.client(login="bob", passcode=USERS["bob"])
        bob.subscribe("/queue/auth", "sub-1", ack="client-individual")
        alice.send("/queue/auth", "hello bob", receipt=True)
        frame = bob.get_message()
        self.assertEqual(frame.body, "hello bob")
        bob.ack(frame, receipt=True)
        alice.close()
        bob.close()

    def test_refused_connection_does_not_affect_others(self):
        alice = self.client(login="alice", passcode=USERS["alice"])
        alice.subscribe("/queue/auth2", "sub-1")
        self.refused({"login": "alice", "passcode": "wrong"}, what="wrong password")
        alice.send("/queue/auth2", "still fine", receipt=True)
        self.assertEqual(alice.get_message().body, "still fine")


class AnonymousAllowedTest(BrokerTestCase):
    """The default (allow_anonymous: true) takes a CONNECT without login."""

    def test_anonymous_allowed_by_default(self):
        raw = self.raw("1.2")
        raw.send_frame("DISCONNECT", {"receipt": "bye"})
        self.assertEqual(raw.expect("RECEIPT").headers.get("receipt-id"), "bye")


if __name__ == "__main__":
    sbtest.main()
