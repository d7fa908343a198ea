"""A real SLURM cluster for the tests: munged, slurmctld and two slurmd nodes.

Each node is its own test host: a network namespace (`ip netns`, a veth into a bridge on
the host, 10.77.0.11 and .12; slurmctld listens on the bridge's 10.77.0.1), its own
hostname (a UTS namespace: `hostname` says node1) and its own /etc/hosts (a mount
namespace with the file bind-mounted, so the host's /etc is never touched). Everything
else, the run directory included, is the shared filesystem a cluster mounts.

Without slurmdbd there is no accounting: AccountingStorageType and JobCompType are
"none", so `sacct` answers nothing and the launcher follows jobs with squeue and
`scontrol show job` (which keep a finished job for MinJobAge seconds).
Cgroups are not needed: proctrack/linuxproc and task/none.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import psutil

from tests.support.procs import free_port, wait_until

BRIDGE = "s3vbr0"
SUBNET = "10.77.0"
CONTROLLER_ADDR = f"{SUBNET}.1"
NODES = {"node1": f"{SUBNET}.11", "node2": f"{SUBNET}.12"}
PARTITION = "debug"

SLURM_CONF = """\
ClusterName=sam3vtest
SlurmctldHost={controller}({controller_addr})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in the test hosts: processes are tracked by parent pid, tasks not bound
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/linear
SchedulerType=sched/builtin
MpiDefault=none
# no slurmdbd: no accounting and no job completion log (sacct has nothing to read)
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
# a restarted slurmd brings its node back; a dead one is noticed within seconds
ReturnToService=2
SlurmdTimeout=10
SlurmctldTimeout=10
MessageTimeout=5
KillWait={kill_wait}
MinJobAge=600
JobRequeue=0
InactiveLimit=0
{nodes}
PartitionName={partition} Nodes={node_names} Default=YES MaxTime=INFINITE State=UP
"""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


def _ns(node: str) -> str:
    return f"s3v-{node}"


class Cluster:
    """Start with `start()`, stop everything with `close()` (idempotent)."""

    def __init__(self, root: Path, kill_wait_s: int = 5):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.kill_wait_s = kill_wait_s
        self.munged: subprocess.Popen | None = None
        self.slurmctld: subprocess.Popen | None = None
        self.slurmd: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # ------------------------------------------------------------ setup

    def start(self) -> "Cluster":
        for sub in ("state", "munge", *(f"spool/{n}" for n in NODES)):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        self._network()
        self._munge()
        self._write_conf()
        self.slurmctld = self._daemon("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        wait_until(lambda: self.scontrol("ping", check=False).stdout.count("UP") >= 1, 30,
                   "slurmctld to answer scontrol ping")
        for node in NODES:
            self.start_slurmd(node)
        wait_until(self.nodes_idle, 60, "both nodes to be idle")
        return self

    def _network(self) -> None:
        self._teardown_network()  # leftovers of an earlier session that was killed
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{CONTROLLER_ADDR}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        hosts = "127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, a in NODES.items())
        hosts += f"{CONTROLLER_ADDR} {socket.gethostname()}\n"
        for index, (node, addr) in enumerate(NODES.items(), start=1):
            ns, host_end = _ns(node), f"s3vveth{index}"
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "link", "set", host_end, "master", BRIDGE)
            _run("ip", "link", "set", host_end, "up")
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{addr}/24", "dev", "eth0")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            (self.root / f"hosts-{node}").write_text(hosts)

    def _munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munged = self._daemon("munged", [
            "munged", "-F", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--pid-file={self.root / 'munge' / 'munged.pid'}",
            f"--log-file={self.root / 'munge' / 'munged.log'}",
            f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        wait_until(self.munge_socket.exists, 15, "munged's socket")

    def _write_conf(self) -> None:
        nodes = "\n".join(f"NodeName={n} NodeAddr={a} NodeHostname={n} {hardware()} State=UNKNOWN"
                          for n, a in NODES.items())
        self.conf.write_text(SLURM_CONF.format(
            controller=socket.gethostname(), controller_addr=CONTROLLER_ADDR,
            munge_socket=self.munge_socket, ctld_port=free_port(), slurmd_port=free_port(),
            root=self.root, kill_wait=self.kill_wait_s, nodes=nodes, partition=PARTITION,
            node_names=",".join(NODES)))

    def _daemon(self, name: str, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=open(self.root / f"{name}.out", "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)

    def start_slurmd(self, node: str) -> None:
        """slurmd for `node` inside its namespaces: its address, hostname and /etc/hosts.
        nsenter, not `ip netns exec`: the latter mounts a fresh /sys, which hides the
        cgroup filesystems slurmd's cgroup plugin insists on finding at start."""
        inner = (f"mount --bind {self.root / f'hosts-{node}'} /etc/hosts && hostname {node} && "
                 f"exec slurmd -D -N {node} -f {self.conf}")
        self.slurmd[node] = self._daemon(
            f"slurmd-{node}", ["nsenter", f"--net=/run/netns/{_ns(node)}", "unshare", "--uts",
                               "--mount", "--propagation", "private", "sh", "-c", inner])

    # ------------------------------------------------------------ looking

    def scontrol(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["scontrol", *args], env=self.env, capture_output=True,
                              text=True, check=check, timeout=30)

    def node_states(self) -> dict[str, str]:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=self.env,
                             capture_output=True, text=True, timeout=30).stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def nodes_idle(self) -> bool:
        states = self.node_states()
        return set(states) == set(NODES) and all(s == "idle" for s in states.values())

    def node_processes(self, node: str) -> list[psutil.Process]:
        """Every live process in the node's network namespace."""
        out = _run("ip", "netns", "pids", _ns(node), check=False).stdout.split()
        found = []
        for pid in out:
            try:
                p = psutil.Process(int(pid))
                if p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
            except (psutil.NoSuchProcess, ValueError):
                pass
        return found

    def trainer_processes(self, node: str, marker: str) -> list[psutil.Process]:
        """The node's processes whose command line contains `marker` (a run directory)."""
        found = []
        for p in self.node_processes(node):
            try:
                if marker in " ".join(p.cmdline()):
                    found.append(p)
            except psutil.NoSuchProcess:
                pass
        return found

    def fail_node(self, node: str) -> None:
        """The node loses power: SIGKILL to every process on it (slurmd, slurmstepd, the
        trainer), nothing gets to clean up."""
        for p in self.node_processes(node):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        proc = self.slurmd.pop(node, None)
        if proc is not None:
            proc.wait(timeout=10)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.root.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-40:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # ------------------------------------------------------------ teardown

    def close(self) -> None:
        for node in NODES:
            for p in self.node_processes(node):
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
        for proc in [*self.slurmd.values(), self.slurmctld, self.munged]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.slurmd.clear()
        self._teardown_network()

    @staticmethod
    def _teardown_network() -> None:
        for index, node in enumerate(NODES, start=1):
            _run("ip", "netns", "del", _ns(node), check=False)
            _run("ip", "link", "del", f"s3vveth{index}", check=False)
        _run("ip", "link", "del", BRIDGE, check=False)


def hardware() -> str:
    """This host's CPU layout as slurmd sees it (`slurmd -C`), so no node is drained for
    a configuration that differs from its hardware."""
    line = _run("slurmd", "-C").stdout.splitlines()[0]
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    return " ".join(f for f in line.split() if f.split("=")[0] in keep)


def slurm_installed() -> bool:
    return all(shutil.which(p) for p in ("slurmctld", "slurmd", "munged", "sbatch", "ip", "unshare"))
