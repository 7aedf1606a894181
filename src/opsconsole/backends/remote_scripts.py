"""Small programs opsconsole sends to hosts: the unix-socket bridge (Supervisor through SSH) and
the watchdog that kills a command when its SSH channel or parent pipe goes away."""

from __future__ import annotations

import shlex

# A bridge from stdin/stdout to a unix socket on the remote host, run with the remote python3
# (present wherever supervisord runs). The socket path is passed as an argument, quoted.
_UNIX_BRIDGE = (
    "import os,socket,sys,threading\n"
    "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n"
    "def up():\n"
    " while True:\n"
    "  d=os.read(0,65536)\n"
    "  if not d:\n"
    "   s.shutdown(socket.SHUT_WR);return\n"
    "  s.sendall(d)\n"
    "threading.Thread(target=up,daemon=True).start()\n"
    "while True:\n"
    " d=s.recv(65536)\n"
    " if not d:break\n"
    " os.write(1,d)\n"
)


# A watchdog for commands that change things (build steps, restarts, custom actions). It runs the
# command in a session of its own with stdin from /dev/null, and kills that whole process group when
# the command's own stdin reaches EOF, which happens when the SSH channel closes: a cancel, a dropped
# connection, or the local parent dying (its pipe closes). sshd sends no signal to a session without a
# pty, so without this a build would outlive the deploy that started it. Exit status is passed on
# (128+N when the command died of signal N). Plain python3 (2.7-compatible calls) keeps it portable
# across GNU, BusyBox and BSD userlands; hosts without python3 run the command unguarded.
_WATCHDOG = (
    "import os,signal,sys,threading,time\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    " os.setsid();n=os.open(os.devnull,os.O_RDONLY);os.dup2(n,0)\n"
    " signal.signal(signal.SIGPIPE,signal.SIG_DFL)\n"
    " os.execv('/bin/sh',['/bin/sh','-c',sys.argv[1]])\n"
    "def kill(*a):\n"
    " for sig in (signal.SIGTERM,signal.SIGKILL):\n"
    "  try:os.killpg(pid,sig)\n"
    "  except OSError:return\n"
    "  time.sleep(2)\n"
    "def watch():\n"
    " while True:\n"
    "  try:d=os.read(0,4096)\n"
    "  except OSError:d=b''\n"
    "  if not d:break\n"
    " kill()\n"
    "t=threading.Thread(target=watch);t.daemon=True;t.start()\n"
    "for s in (signal.SIGTERM,signal.SIGHUP,signal.SIGINT):\n"
    " signal.signal(s,lambda *a:threading.Thread(target=kill).start())\n"
    "signal.signal(signal.SIGPIPE,signal.SIG_IGN)\n"
    "_,st=os.waitpid(pid,0)\n"
    "sys.exit(128+os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st))\n"
)


def guarded_command(command: str) -> str:
    """`command`, killed with its process group when its stdin (the channel or pipe) closes."""
    return (
        f"if command -v python3 >/dev/null 2>&1; then exec python3 -c {shlex.quote(_WATCHDOG)} {shlex.quote(command)}; "
        f"else exec /bin/sh -c {shlex.quote(command)}; fi"
    )


def unix_bridge_command(path: str) -> str:
    return f"python3 -c {shlex.quote(_UNIX_BRIDGE)} {shlex.quote(path)}"


# Every SSH command first tells its process group on stderr, in a line of its own that the reader
# removes: sshd starts each session's shell with setsid(), so `$$` leads the group of every process
# the command starts (pipelines, background jobs; the watchdog above, whose TERM handler kills its
# own group too). A command that times out or is cancelled is then killed on the host by that group,
# not only left to a closed channel (sshd signals nothing to a session without a pty, and honours
# no `signal` request without privilege separation).
GROUP_MARK = "\x1eopsconsole-pgid="


def tagged_command(command: str) -> str:
    """`command`, preceded by the GROUP_MARK line naming its process group on stderr."""
    return f"printf '{GROUP_MARK}%s\\n' \"$$\" >&2; {command}"


def kill_group_command(pgid: int) -> str:
    """TERM to the process group `pgid` (to the process, where it leads no group), then KILL after
    2 s if anything of it is left."""
    group = f"-{int(pgid)}"
    return (
        f"kill -TERM -- {group} 2>/dev/null || kill -TERM {int(pgid)} 2>/dev/null || exit 0; "
        "i=0; while [ $i -lt 10 ]; do "
        f"kill -0 -- {group} 2>/dev/null || exit 0; sleep 0.2 2>/dev/null || sleep 1; i=$((i+1)); done; "
        f"kill -KILL -- {group} 2>/dev/null; exit 0"
    )
