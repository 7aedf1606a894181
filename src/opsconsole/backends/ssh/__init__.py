"""SSH hosts over asyncssh: `SshHost` is the package's face."""

from opsconsole.backends.ssh.host import SshHost

__all__ = ["SshHost"]
