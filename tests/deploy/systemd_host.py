"""A real systemd host on a CI machine: Debian bookworm booted with systemd-nspawn, reached by SSH.

The root filesystem is built once with debootstrap and kept as a zstd tarball in the cache
(``$EEGPI_CI_CACHE``, default ``~/.cache/eegpi-ci``); every boot unpacks a fresh copy, so each
run provisions a clean image. The container shares the host's network namespace: sshd inside
listens on a free loopback port, and so must everything else the test starts in it.

nspawn needs ``--register=no --keep-unit`` on a host whose PID 1 is not systemd (otherwise it
asks machined for a scope and dies). Nothing outlives :meth:`SystemdHost.close`: the container
is powered off (killed if it does not stop), every process whose root is the image is killed,
stray mounts under it are unmounted and the image is removed.

Manual use (root): ``python -m tests.deploy.systemd_host build`` fills the cache;
``python -m tests.deploy.systemd_host shell`` boots a host, prints how to reach it and powers it
off on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["SUITE", "SystemdHost", "cache_dir", "free_port", "missing_tools", "rootfs_tarball"]

SUITE = "bookworm"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "python3",
    "sudo",
    "iproute2",
    "ca-certificates",
    "procps",
)
"""What a stock headless image has; what eegpi needs beyond it is the playbook's job."""
TOOLS = ("debootstrap", "systemd-nspawn", "nsenter", "ssh", "ssh-keygen", "zstd", "tar")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BOOT_TIMEOUT_S = 120.0
CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
"""What commands run with inside, as after a login."""
STOP_TIMEOUT_S = 30.0
TMPFS_SIZE = "6g"
"""Room for the image, eegpi's venv, compilers and a second venv; it takes only what it holds."""


def cache_dir() -> Path:
    """Kept between runs on the same machine, never inside the checkout."""
    return Path(os.environ.get("EEGPI_CI_CACHE") or Path.home() / ".cache" / "eegpi-ci")


def rootfs_tarball() -> Path:
    """The cached image; its name changes with the package list, so a change rebuilds it."""
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    return cache_dir() / f"{SUITE}-rootfs-{key}.tar.zst"


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the container shares this network namespace)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mirror() -> str:
    """The Debian mirror this machine's apt uses, so debootstrap reaches what apt reaches."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for block in sources.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        m = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", legacy.read_text(), re.M)
        if m:
            return m.group(1)
    return DEFAULT_MIRROR


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(path) or point.startswith(prefix):
            found.append(point)
    return found


def _unmount_all(path: Path, *, below_only: bool = False) -> None:
    """Deepest first; ``path`` itself too (the tmpfs) unless ``below_only``."""
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        if below_only and point == str(path):
            continue
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _processes_rooted_in(path: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(entry / "root") == str(path):
                pids.append(int(entry.name))
    return pids


def _mount_tmpfs(path: Path) -> None:
    """The image lives in memory: it unpacks fast, and goes away at once with the unmount
    (deleting its ~50,000 files from a busy disk took over a minute)."""
    path.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(path)],
        check=True,
    )


def build_rootfs_tarball(log: Path | None = None) -> Path:
    """Debootstrap the image (about 2 minutes) and keep it as a tarball; reused when present."""
    tarball = rootfs_tarball()
    if tarball.is_file():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-build-", dir=tarball.parent))
    root = work / "rootfs"
    out = open(log or work / "debootstrap.log", "ab")  # noqa: SIM115 (closed below)
    try:
        _mount_tmpfs(root)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(root),
                _mirror(),
            ],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        # debootstrap unmounts /proc and /sys itself, unless it failed
        _unmount_all(root, below_only=True)
        subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True, stdout=out)
        # unique: two runs on one machine may build at once; the rename is atomic
        partial = work / tarball.name  # on the disk, beside the cache: not in the tmpfs
        subprocess.run(
            [
                "tar",
                "--zstd",
                "--numeric-owner",
                "--xattrs",
                "-C",
                str(root),
                "-cpf",
                str(partial),
                ".",
            ],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        partial.rename(tarball)
    finally:
        out.close()
        _unmount_all(root)
        shutil.rmtree(work, ignore_errors=True)
    return tarball


class SystemdHost:
    """A booted container: ``with SystemdHost(workdir) as host: host.run("systemctl ...")``."""

    def __init__(self, workdir: Path, name: str = "") -> None:
        self.workdir = workdir
        # unique: another run on this machine may have a container up at the same time
        self.name = name or f"eegpi-ci-{secrets.token_hex(3)}"
        self.root = workdir / "rootfs"
        self.key = workdir / "id_ed25519"
        self.ssh_port = free_port()
        self.log = workdir / "nspawn.log"
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.pid1 = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> SystemdHost:
        try:
            self.boot()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def boot(self) -> None:
        tarball = build_rootfs_tarball(self.workdir / "debootstrap.log")
        _mount_tmpfs(self.root)
        subprocess.run(
            [
                "tar",
                "--zstd",
                "--numeric-owner",
                "--xattrs",
                "-C",
                str(self.root),
                "-xpf",
                str(tarball),
            ],
            check=True,
        )
        self._prepare()
        caches = cache_dir()
        binds = []
        for host_dir, inside in (
            (caches / "pip", "/root/.cache/pip"),
            (caches / "apt-archives", "/var/cache/apt/archives"),
        ):
            (host_dir / "partial").mkdir(parents=True, exist_ok=True)
            (self.root / inside.lstrip("/")).mkdir(parents=True, exist_ok=True)
            binds.append(f"--bind={host_dir}:{inside}")
        with open(self.log, "wb") as out:
            self._nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    f"--directory={self.root}",
                    "--boot",
                    "--register=no",
                    "--keep-unit",
                    f"--machine={self.name}",
                    "--console=passive",
                    "--link-journal=no",
                    "--resolv-conf=copy-host",
                    *binds,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid1 = self._find_pid1()
        self._wait_for_boot()
        self._wait_for_ssh()

    def close(self) -> None:
        """Power off, then make sure no process, mount or file of the container is left."""
        proc = self._nspawn
        started = time.monotonic()
        notes = []
        if proc is not None and proc.poll() is None:
            if self.pid1:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid1, signal.SIGRTMIN + 4)  # systemd: poweroff
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                notes.append(self._stuck_report())
                if self.pid1:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid1, signal.SIGKILL)  # takes the PID namespace with it
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        notes.append(f"stopped after {time.monotonic() - started:.1f} s")
        for pid in _processes_rooted_in(self.root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _unmount_all(self.root)
        with contextlib.suppress(FileNotFoundError):
            # left behind where /run is not a tmpfs
            shutil.rmtree(Path("/run/systemd/nspawn/propagate") / self.name)
        if _mounts_under(self.root):  # never delete through a bind mount (the caches)
            raise RuntimeError(f"cannot unmount {', '.join(_mounts_under(self.root))}")
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=False)
        notes.append(f"removed after {time.monotonic() - started:.1f} s")
        with contextlib.suppress(OSError):
            (self.workdir / "close.log").write_text("\n".join(notes) + "\n")

    def _stuck_report(self) -> str:
        """What keeps the container from powering off (for close.log)."""
        ps = subprocess.run(
            ["ps", "-eo", "pid,stat,wchan:24,etimes,args", "--sort", "pid"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        inside = {str(pid) for pid in _processes_rooted_in(self.root)}
        rows = [row for row in ps[1:] if row.split()[0] in inside]
        return f"not stopped after {STOP_TIMEOUT_S:g} s; its processes:\n" + "\n".join(rows)

    # -- reaching it -------------------------------------------------------------------------
    def run(
        self, command: str, *, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """A shell command inside the container, as root, in all its namespaces."""
        res = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", "/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=CONTAINER_ENV,  # not this process's (pip settings, proxies of the host)
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"`{command}` exited {res.returncode} in the container:\n{res.stdout}{res.stderr}"
            )
        return res

    def ssh_args(self) -> list[str]:
        return [
            "ssh",
            "-i",
            str(self.key),
            "-p",
            str(self.ssh_port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "root@127.0.0.1",
        ]

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # -- internals ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        root = self.root
        (root / "etc/hostname").write_text(self.name + "\n")
        # pip inside must trust what this machine trusts (an inspecting proxy's CA, say)
        extra = root / "usr/local/share/ca-certificates"
        extra.mkdir(parents=True, exist_ok=True)
        for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy2(crt, extra / crt.name)
        subprocess.run(
            ["chroot", str(root), "update-ca-certificates"], check=True, capture_output=True
        )
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "eegpi-ci", "-f", str(self.key)],
            check=True,
        )
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(self.key.with_suffix(".pub").read_text())
        keys.chmod(0o600)
        (root / "etc/ssh/sshd_config.d/eegpi-ci.conf").write_text(
            f"Port {self.ssh_port}\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nUseDNS no\n"
        )

    def _find_pid1(self) -> int:
        """PID 1 of the container is the nspawn process's only child."""
        assert self._nspawn is not None
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        children = Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children")
        while time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited:\n{self.log_text()}")
            with contextlib.suppress(OSError):
                pids = children.read_text().split()
                if pids:
                    pid = int(pids[0])
                    # the child is nspawn's own until it execs systemd
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return pid
            time.sleep(0.05)  # polling for the container's init to appear
        raise RuntimeError(f"no systemd in the container after {BOOT_TIMEOUT_S} s")

    def _wait_for_boot(self) -> None:
        """Until systemd says the boot is over (its bus answers a moment after it starts:
        until then systemctl says "offline")."""
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            res = self.run(
                "systemctl is-system-running --wait", check=False, timeout=BOOT_TIMEOUT_S
            )
            state = res.stdout.strip()
            if state in ("running", "degraded"):
                return
            if state not in ("", "offline") or time.monotonic() > deadline:
                failed = self.run("systemctl --failed --no-legend", check=False).stdout
                raise RuntimeError(
                    f"the container did not boot: {state or res.stderr}\n{failed}{self.log_text()}"
                )
            time.sleep(0.1)  # polling for systemd's bus to appear

    def _wait_for_ssh(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            res = subprocess.run(
                [*self.ssh_args(), "true"],
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if res.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd in the container does not answer: {res.stderr}")
            time.sleep(0.1)  # polling for sshd to listen


def main(argv: list[str]) -> int:
    if os.geteuid() != 0 or missing_tools():
        print(f"needs root and {', '.join(TOOLS)} (scripts/install-system-deps.sh --deploy)")
        return 1
    if argv[:1] == ["build"]:
        print(build_rootfs_tarball())
        return 0
    if argv[:1] == ["shell"]:
        with (
            tempfile.TemporaryDirectory(prefix="eegpi-host-") as tmp,
            SystemdHost(Path(tmp)) as host,
        ):
            print("ssh:", " ".join(host.ssh_args()))
            print(f"or: nsenter -t {host.pid1} -a bash    (Ctrl-C powers it off)")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        return 0
    print("usage: python -m tests.deploy.systemd_host build|shell")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
