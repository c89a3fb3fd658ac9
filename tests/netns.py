"""Machines for tests: one Linux network namespace per "host", each with its own address.

    hosts = Hosts(["chief", "a", "b"])      # 10.213.0.1, .2, .3 on a bridge of their own
    proc = hosts.popen("a", [sys.executable, "-m", "mnistlab", ...], stdout=log)
    hosts.set_link("a", up=False)            # a cut off the network, its processes go on
    hosts.kill_all("a")                      # every process in a's namespace, SIGKILL
    hosts.close()                            # processes killed, namespaces and links gone

The bridge sits in a namespace of its own too, so nothing touches the root
namespace's interfaces: traffic goes only between these namespaces (and each
one's loopback). Names carry a random tag, so tests running in parallel
(pytest-xdist) never collide; the addresses may repeat across tests, since
each set of namespaces is a network of its own. Needs root and iproute2's
`ip`; `hosts_or_skip()` skips the test, saying why, where they are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid

SUBNET = "10.213.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class Hosts:
    def __init__(self, names: list[str]):
        self.tag = "ml" + uuid.uuid4().hex[:8]
        self.switch = f"{self.tag}-sw"
        self.ns = {name: f"{self.tag}-{name}" for name in names}
        self.address = {name: f"{SUBNET}.{i + 1}" for i, name in enumerate(names)}
        self.procs: list[subprocess.Popen] = []
        self.made: list[str] = []
        try:
            self._add(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, name in enumerate(names):
                ns = self.ns[name]
                self._add(ns)
                _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}", "netns", self.switch)
                _ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0", "up")
                _ip("-n", ns, "addr", "add", f"{self.address[name]}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.close()
            raise

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def popen(self, name: str, cmd: list[str], **kwargs) -> subprocess.Popen:
        """`cmd` run inside host `name`'s namespace (`ip netns exec`: the process itself is in it)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[name], *cmd], **kwargs)
        self.procs.append(proc)
        return proc

    def set_link(self, name: str, up: bool) -> None:
        """Cut host `name` off the network (its processes go on), or plug it back in."""
        _ip("-n", self.ns[name], "link", "set", "eth0", "up" if up else "down")

    def pids(self, name: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns[name]], capture_output=True, text=True, timeout=30)
        return [int(p) for p in out.stdout.split()]

    def kill_all(self, name: str) -> list[int]:
        """SIGKILL every process in host `name`'s namespace (the machine is gone); returns their pids."""
        pids = self.pids(name)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            if proc.pid in pids:
                proc.wait(timeout=60)
        return pids

    def close(self) -> None:
        for name in list(self.ns):
            if self.ns[name] in self.made:
                self.kill_all(name)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for ns in reversed(self.made):  # deleting a namespace removes its end of each veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.made = []


def hosts_or_skip(names: list[str]) -> Hosts:
    """`Hosts(names)`, or a visible pytest skip saying why they cannot be made here."""
    import pytest

    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("network namespaces need root: run as root (CI does) to test a search across hosts")
    if shutil.which("ip") is None:
        pytest.skip("network namespaces need iproute2's `ip`: apt-get install iproute2")
    try:
        return Hosts(names)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot make network namespaces here ({' '.join(e.cmd)}: {(e.stderr or '').strip()})")
