# tests/integration/amqtest.py — Debian's ActiveMQ 5.17 (the `activemq` package) as a child
# process of a test: its own temp dir, loopback ports only (OpenWire and STOMP; no web console, no
# JMX), a small heap. Used by gateway_activemq_test.py (two brokers behind Switchboard's gateway)
# and activemq_diff_test.py (the differential test: one broker, the same scenarios as Switchboard).
#
# Debian's launcher (/usr/bin/activemq) runs `java -jar activemq.jar start xbean:...` through two
# shells; we run that java command ourselves so that its PID is the broker's (for SIGKILL /
# SIGSTOP) and the heap is ours to choose.

import os
import shutil
import signal
import socket
import subprocess
import time
from xml.sax.saxutils import quoteattr

from sbtest import HOST, free_port

ACTIVEMQ_HOME = "/usr/share/activemq"
ACTIVEMQ_JAR = os.path.join(ACTIVEMQ_HOME, "bin", "activemq.jar")
JAVA_LIB = "/usr/share/java"

AMQ_START_TIMEOUT = 60.0   # a JVM start on a busy 2-core machine; usually 3 s
JVM_FAST = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]   # quicker starts, fewer threads

# The broker element's children are written in this (alphabetical) order: ActiveMQ's schema
# accepts any order since 5.4, older documentation asks for this one, and it costs nothing.
ACTIVEMQ_XML = """<!-- written by tests/integration/amqtest.py -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName={name} persistent="{persistent}"
          useJmx="false" advisorySupport="{advisory}" schedulerSupport="{scheduler}" dataDirectory={data}>
{elements}
  </broker>
</beans>
"""

LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d{HH:mm:ss.SSS} %-5p %c{1} - %m%n
"""

# What Debian's launcher passes to a Java > 8.
JAVA_MODULE_FLAGS = [
    "--add-reads=java.xml=java.logging",
    "--add-opens", "java.base/java.security=ALL-UNNAMED",
    "--add-opens", "java.base/java.net=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.naming/javax.naming.spi=ALL-UNNAMED",
    "--add-opens", "java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent.atomic=ALL-UNNAMED",
]


def missing():
    """Why ActiveMQ cannot run here (a reason for unittest.skip), or None."""
    if not os.path.isfile(ACTIVEMQ_JAR):
        return f"needs Debian's activemq package ({ACTIVEMQ_JAR}; scripts/install-deps.sh installs it)"
    if not shutil.which("java"):
        return "needs a Java runtime (scripts/install-deps.sh installs openjdk-17-jdk-headless)"
    return None


def port_open(port):
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# Debian's libxstream-java and libjettison-java (with xpp3, a dependency of the former).
ADVISORY_JARS = ("xstream.jar", "jettison.jar", "xpp3.jar")


class ActiveMQ:
    """One broker in root/activemq-<name>.

    persistent: KahaDB in the broker's temp dir (False: everything in memory).
    advisory, scheduler: advisorySupport and schedulerSupport.
    elements: extra children of <broker>, {element name: its XML}, e.g.
      {"destinationPolicy": "<destinationPolicy>...</destinationPolicy>"}; written sorted by name
      with systemUsage and transportConnectors (which this class writes itself)."""

    def __init__(self, name, root, persistent=False, advisory=False, scheduler=False, elements=None,
                 memory_limit="64 mb"):
        self.name = name
        self.dir = os.path.join(root, "activemq-" + name)
        self.conf = os.path.join(self.dir, "conf")
        self.data = os.path.join(self.dir, "data")
        self.tmp = os.path.join(self.dir, "tmp")
        for d in (self.conf, self.data, self.tmp):
            os.makedirs(d, exist_ok=True)
        self.openwire = free_port()
        self.stomp = free_port()
        self.log_path = os.path.join(self.dir, "activemq.log")
        self.proc = None
        self.starts = 0
        parts = dict(elements or {})
        parts["systemUsage"] = (f'<systemUsage><systemUsage><memoryUsage><memoryUsage limit="{memory_limit}"/>'
                                f'</memoryUsage></systemUsage></systemUsage>')
        parts["transportConnectors"] = (
            "<transportConnectors>\n"
            f'  <transportConnector name="openwire" uri="tcp://{HOST}:{self.openwire}"/>\n'
            f'  <transportConnector name="stomp" uri="stomp://{HOST}:{self.stomp}"/>\n'
            "</transportConnectors>")
        if persistent:
            parts["persistenceAdapter"] = (f'<persistenceAdapter><kahaDB directory={quoteattr(os.path.join(self.data, "kahadb"))}/>'
                                           f'</persistenceAdapter>')
        elements_xml = "\n".join("    " + parts[k].replace("\n", "\n    ") for k in sorted(parts))
        flag = lambda b: "true" if b else "false"   # noqa: E731
        with open(os.path.join(self.conf, "activemq.xml"), "w") as f:
            f.write(ACTIVEMQ_XML.format(name=quoteattr(name), data=quoteattr(self.data),
                                        persistent=flag(persistent), advisory=flag(advisory),
                                        scheduler=flag(scheduler), elements=elements_xml))
        with open(os.path.join(self.conf, "log4j.properties"), "w") as f:
            f.write(LOG4J)
        # ActiveMQ's STOMP sends advisory messages as JSON through XStream and Jettison, which
        # Debian's activemq package does not put on its classpath (without them a STOMP advisory
        # subscriber gets nothing): the broker's own lib/ takes them when installed.
        lib = os.path.join(self.dir, "lib")
        os.makedirs(lib, exist_ok=True)
        for jar in ADVISORY_JARS:
            path = os.path.join("/usr/share/java", jar)
            if os.path.isfile(path) and not os.path.exists(os.path.join(lib, jar)):
                os.symlink(path, os.path.join(lib, jar))

    @property
    def url(self):
        return f"tcp://{HOST}:{self.openwire}"

    def start(self):
        """Starts the JVM (returns at once; wait_ready() waits for its ports)."""
        self.starts += 1
        cmd = [shutil.which("java"), "-Xms64m", "-Xmx256m"] + JVM_FAST + JAVA_MODULE_FLAGS + [
            f"-Dactivemq.classpath={self.conf}", f"-Dactivemq.home={ACTIVEMQ_HOME}",
            f"-Dactivemq.base={self.dir}", f"-Dactivemq.conf={self.conf}", f"-Dactivemq.data={self.data}",
            f"-Djava.io.tmpdir={self.tmp}",
            "-jar", ACTIVEMQ_JAR, "start", "xbean:file:" + os.path.join(self.conf, "activemq.xml")]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()

    def wait_ready(self, timeout=AMQ_START_TIMEOUT):
        """Both transports accept (the STOMP one starts last); fails early if the JVM exited."""
        deadline = time.monotonic() + timeout
        waiting = [self.openwire, self.stomp]
        while waiting:
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(f"ActiveMQ {self.name} exited with code {code} while starting\n"
                                     f"{self.describe()}")
            if port_open(waiting[0]):
                waiting.pop(0)
                continue
            if time.monotonic() > deadline:
                raise AssertionError(f"ActiveMQ {self.name} did not accept on {HOST}:{waiting[0]} "
                                     f"within {timeout}s\n{self.describe()}")
            time.sleep(0.05)   # polling with a deadline: nothing to await on a port opening
        return time.monotonic() - self.started_at

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL the JVM (the kernel closes its sockets at once) and reap it."""
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)   # a frozen one dies too
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        """At the end: SIGTERM (a clean broker stop), SIGKILL after 15 s."""
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def describe(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            text = ["(no log)"]
        return (f"--- ActiveMQ {self.name} log tail ({self.log_path}) ---\n" + "\n".join(text[-lines:]) +
                "\n--- end ---")
