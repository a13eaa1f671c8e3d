#!/usr/bin/python3
# tests/integration/activemq_diff_test.py — the differential test of issue 18: every scenario of
# tests/integration/activemq_diff/scenarios_*.py runs against Debian's ActiveMQ 5.17 and against
# Switchboard, and what each returns (which messages, in which order, to which consumer, with
# which headers; normalised) must be equal, or differ exactly as the scenario's declared
# Difference says (and docs/activemq-differences.md lists it). See activemq_diff/README.md.
#
# One ActiveMQ for the whole run (a JVM start takes seconds), one Switchboard per family (its
# file may configure it). A scenario runs on both brokers at once (ActiveMQ's run in a thread).
#
#   activemq_diff_test.py --bin build/switchboard                  # everything
#   ... --family basic --scenario queue_order                      # a selection (repeatable)
#   ... --activemq-only --scenario browse_                         # learn what ActiveMQ does
#   ... --switchboard-only / --show (print both results) / --serial
# Skips (unittest skip) when ActiveMQ or Java is absent; CI installs both (scripts/install-deps.sh).

import argparse
import difflib
import glob
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(_HERE, "activemq_diff"))
import sbtest  # noqa: E402
import amqtest  # noqa: E402
import harness  # noqa: E402

_REPO = os.path.dirname(os.path.dirname(_HERE))
DIFFERENCES_DOC = os.path.join(_REPO, "docs", "activemq-differences.md")

OPTS = argparse.Namespace(family=[], scenario=[], activemq_only=False, switchboard_only=False,
                          show=False, serial=False)


# ---------------------------------------------------------------------------------------------
# Discovery: every scenarios_<family>.py; the family is the file name's tail.

FAMILIES = {}   # family -> module


def discover():
    for path in sorted(glob.glob(os.path.join(_HERE, "activemq_diff", "scenarios_*.py"))):
        family = os.path.basename(path)[len("scenarios_"):-len(".py")]
        before = len(harness.SCENARIOS)
        spec = importlib.util.spec_from_file_location(f"activemq_diff_scenarios_{family}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for s in harness.SCENARIOS[before:]:
            s.family = family
        FAMILIES[family] = module
    seen = set()
    for s in harness.SCENARIOS:
        if s.id in seen:
            raise SystemExit(f"two scenarios named {s.id}")
        seen.add(s.id)


def selected(s):
    if OPTS.family and s.family not in OPTS.family:
        return False
    if OPTS.scenario and not any(p == s.id or p in s.name for p in OPTS.scenario):
        return False
    return True


def activemq_settings():
    """The union of every family's ActiveMQ settings (one broker serves them all)."""
    elements = {}
    policies = []
    for family, m in FAMILIES.items():
        for name, xml in getattr(m, "ACTIVEMQ_ELEMENTS", {}).items():
            if name in elements and elements[name] != xml:
                raise SystemExit(f"scenarios_{family}.py: ACTIVEMQ_ELEMENTS[{name!r}] conflicts with another family's")
            elements[name] = xml
        if getattr(m, "ACTIVEMQ_POLICY_ENTRIES", ""):
            policies.append(f"<!-- scenarios_{family}.py -->\n" + m.ACTIVEMQ_POLICY_ENTRIES.strip())
    if policies:
        if "destinationPolicy" in elements:
            raise SystemExit("ACTIVEMQ_POLICY_ENTRIES and ACTIVEMQ_ELEMENTS['destinationPolicy'] both given")
        elements["destinationPolicy"] = ("<destinationPolicy><policyMap><policyEntries>\n" + "\n".join(policies) +
                                         "\n</policyEntries></policyMap></destinationPolicy>")
    return elements


# ---------------------------------------------------------------------------------------------
# The brokers.

class Shared:
    root = None
    amq = None
    amq_error = None


def shared_root():
    if Shared.root is None:
        Shared.root = tempfile.mkdtemp(prefix="sbdiff-")
    return Shared.root


def ensure_activemq():
    """The run's ActiveMQ, started on first use (raises SkipTest when it cannot run here)."""
    if OPTS.switchboard_only:
        return None
    why = amqtest.missing()
    if why:
        raise unittest.SkipTest(why)
    if Shared.amq_error:
        raise AssertionError(f"ActiveMQ failed to start earlier: {Shared.amq_error}")
    if Shared.amq is None:
        amq = amqtest.ActiveMQ("diff", shared_root(), persistent=True, advisory=True, scheduler=True,
                               elements=activemq_settings())
        amq.start()
        try:
            took = amq.wait_ready()
        except AssertionError as e:
            Shared.amq_error = str(e)
            amq.kill()
            raise
        sys.stderr.write(f"\n[activemq_diff] ActiveMQ ready in {took:.1f}s on STOMP port {amq.stomp}\n")
        Shared.amq = amq
    return Shared.amq


def tearDownModule():
    if Shared.amq is not None:
        Shared.amq.stop()
    if Shared.root and not os.environ.get("SB_KEEP_TMP"):
        shutil.rmtree(Shared.root, ignore_errors=True)


def switchboard_config(module, workdir):
    extra = getattr(module, "SWITCHBOARD_CONFIG", None)
    if callable(extra):
        extra = extra(workdir)
    return extra or {}


# ---------------------------------------------------------------------------------------------
# Running one scenario on one broker.

def run_on(s, target, port):
    """(normalised result, None) or (None, traceback text)."""
    ctx = harness.Context(target, port, s.id)
    try:
        result = s.fn(ctx)
        return ctx.normalise(result), None
    except Exception:
        return None, traceback.format_exc()
    finally:
        ctx.close_all()


def run_in_thread(s, target, port):
    box = {}

    def body():
        box["out"] = run_on(s, target, port)
    t = threading.Thread(target=body, name=f"{s.id}@{target}", daemon=True)
    t.start()
    return t, box


def join(s, t, box, target):
    t.join(s.timeout)
    if t.is_alive():
        return None, f"{s.id} on {target}: still running after {s.timeout}s"
    return box["out"]


def text_diff(a, b, a_name="activemq", b_name="switchboard"):
    return "\n".join(difflib.unified_diff(harness.canonical(a).splitlines(), harness.canonical(b).splitlines(),
                                          a_name, b_name, lineterm="", n=4))


class FamilyCase(unittest.TestCase):
    family = None
    module = None
    sb = None

    @classmethod
    def setUpClass(cls):
        cls.amq = ensure_activemq()
        cls.sb = None
        if OPTS.activemq_only:
            return
        workdir = os.path.join(shared_root(), "switchboard-" + cls.family)
        os.makedirs(workdir, exist_ok=True)
        cls.sb = sbtest.Broker(switchboard_config(cls.module, workdir), workdir=workdir)
        cls.addClassCleanup(cls.sb.cleanup)
        cls.addClassCleanup(cls.sb.stop)   # runs first (LIFO): a clean exit is part of the test
        cls.sb.start()

    def check(self, s):
        t0 = time.monotonic()
        runs = {}
        if self.amq is not None:
            runs["activemq"] = run_in_thread(s, "activemq", self.amq.stomp)
            if OPTS.serial:
                runs["activemq"][0].join(s.timeout)
        if self.sb is not None:
            self.assertTrue(self.sb.alive(), f"switchboard died\n{self.sb.describe()}")
            runs["switchboard"] = run_in_thread(s, "switchboard", self.sb.port)
        out = {target: join(s, t, box, target) for target, (t, box) in runs.items()}
        took = time.monotonic() - t0
        errors = [f"--- {target} raised ---\n{err}" for target, (_, err) in out.items() if err]
        if OPTS.show or OPTS.activemq_only or OPTS.switchboard_only or errors:
            for target, (res, _) in out.items():
                sys.stderr.write(f"\n[{s.id}] {target} ({took:.1f}s):\n{harness.canonical(res)}\n")
        if errors:
            logs = "\n".join(x.describe() for x in (self.sb, self.amq) if x is not None)
            self.fail(f"{s.id}: the scenario failed\n" + "\n".join(errors) + "\n" + logs)
        if len(out) < 2:
            return
        amq, sb = out["activemq"][0], out["switchboard"][0]
        d = s.difference
        if d is not None:
            if "*" in d.activemq:
                self.assertEqual(harness.canonical(amq), harness.canonical(d.activemq["*"]),
                                 f"{s.id}: ActiveMQ's result is not the declared one: {d.reason}")
                self.assertEqual(harness.canonical(sb), harness.canonical(d.switchboard["*"]),
                                 f"{s.id}: Switchboard's result is not the declared one: {d.reason}")
                return
            self.assertIsInstance(amq, dict, f"{s.id}: a Difference by key needs a dict result")
            self.assertIsInstance(sb, dict, f"{s.id}: a Difference by key needs a dict result")
            for key in d.activemq:
                self.assertEqual(harness.canonical(amq.get(key)), harness.canonical(d.activemq[key]),
                                 f"{s.id}: ActiveMQ's {key!r} is not the declared one ({d.reason})")
                self.assertEqual(harness.canonical(sb.get(key)), harness.canonical(d.switchboard[key]),
                                 f"{s.id}: Switchboard's {key!r} is not the declared one ({d.reason})")
            amq = {k: v for k, v in amq.items() if k not in d.activemq}
            sb = {k: v for k, v in sb.items() if k not in d.activemq}
        if amq != sb:
            self.fail(f"{s.id}: ActiveMQ and Switchboard differ ({s.doc})\n{text_diff(amq, sb)}")


def make_test(s):
    def test(self):
        self.check(s)
    test.__doc__ = f"{s.id}: {s.doc.splitlines()[0] if s.doc else ''}"
    return test


def build_cases():
    cases = {}
    for family, module in FAMILIES.items():
        tests = {f"test_{s.name}": make_test(s) for s in harness.SCENARIOS if s.family == family and selected(s)}
        if not tests:
            continue
        name = f"Family_{family}"
        cases[name] = type(name, (FamilyCase,), dict(tests, family=family, module=module))
    return cases


class DifferencesDocumented(unittest.TestCase):
    def test_every_declared_difference_is_in_the_doc(self):
        declared = [s for s in harness.SCENARIOS if s.difference is not None]
        if not declared:
            return
        self.assertTrue(os.path.isfile(DIFFERENCES_DOC), f"{DIFFERENCES_DOC} is missing")
        with open(DIFFERENCES_DOC, encoding="utf-8") as f:
            text = f.read()
        missing = [s.id for s in declared if f"`{s.id}`" not in text]
        self.assertEqual(missing, [], f"declared differences not listed (as `family.scenario`) in {DIFFERENCES_DOC}")

    def test_scenarios_found(self):
        self.assertGreater(len(harness.SCENARIOS), 0, "no scenarios discovered")


def main():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--family", action="append", default=[])
    parser.add_argument("--scenario", action="append", default=[],
                        help="a family.name id, or a part of a scenario's name")
    parser.add_argument("--activemq-only", action="store_true")
    parser.add_argument("--switchboard-only", action="store_true")
    parser.add_argument("--show", action="store_true", help="print both results of every scenario")
    parser.add_argument("--serial", action="store_true", help="ActiveMQ's run first, then Switchboard's")
    opts, rest = parser.parse_known_args(sys.argv[1:])
    for k, v in vars(opts).items():
        setattr(OPTS, k, v)
    sys.argv = [sys.argv[0]] + rest
    discover()
    globals().update(build_cases())
    if OPTS.activemq_only:
        # No Switchboard binary needed.
        unittest.main(argv=sys.argv, verbosity=2)
    else:
        sbtest.main()


if __name__ == "__main__":
    main()
