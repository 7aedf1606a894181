#!/bin/sh
# usage: build-rootfs.sh OUT.tar [CACHE_DIR]   (root; needs mmdebstrap; *.service + sd-entry.sh next to this script)
# CACHE_DIR (optional): .debs are synced in from / out to it, so a rebuild downloads nothing.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd); OUT=$1; CACHE=${2:-}
# the Debian mirror apt already uses on this machine
MIRROR=${MIRROR:-$( { grep -hoE "^deb +(\[[^]]*\] +)?[a-z]+://[^ ]+" /etc/apt/sources.list 2>/dev/null | awk '{print $NF}';
  grep -h "^URIs:" /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'; } | head -1)}
set --
if [ -n "$CACHE" ]; then
  mkdir -p "$CACHE"
  set -- --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives/"' \
    --setup-hook="sync-in $CACHE /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE"
fi
mmdebstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,openssh-server,python3,sudo,git \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  "$@" \
  --customize-hook="copy-in $HERE/demo.service $HERE/worker.service $HERE/flaky.service $HERE/broken.service $HERE/shop-web.service /etc/systemd/system/" \
  --customize-hook="copy-in $HERE/sd-entry.sh /usr/local/sbin/" \
  --customize-hook='chroot "$1" systemctl enable demo.service worker.service flaky.service broken.service shop-web.service ssh.service' \
  --customize-hook='chroot "$1" systemctl mask systemd-udevd.service systemd-udevd-kernel.socket systemd-udevd-control.socket getty.target console-getty.service systemd-logind.service apt-daily.timer apt-daily-upgrade.timer' \
  --customize-hook='mkdir -p "$1/etc/systemd/journald.conf.d" && printf "[Journal]\nStorage=volatile\n" > "$1/etc/systemd/journald.conf.d/volatile.conf"' \
  --customize-hook='printf "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n" > "$1/etc/ssh/sshd_config.d/test.conf"' \
  --customize-hook='mkdir -p -m 700 "$1/root/.ssh"; echo opsc-systemd > "$1/etc/hostname"; : > "$1/etc/machine-id"; echo LANG=C.UTF-8 > "$1/etc/default/locale"' \
  bookworm "$OUT" "$MIRROR"
