#!/usr/bin/env bash
# Installs (when missing) and starts the system services the tests need, runs the given command,
# then stops what this script started. Used by `make test` and `.ci/run`.
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v git >/dev/null 2>&1 || need+=(git)
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # `opsconsole serve` is tested in a real browser
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "with-services: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "with-services: missing ${need[*]} and not root: the tests that need them are skipped" >&2
  fi
fi

# Nginx: installed but never started by its package (policy-rc.d refuses every start while
# apt runs); the tests run their own in a temp prefix on loopback (tests/nginx_harness.py).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "with-services: installing nginx"
    policy=/usr/sbin/policy-rc.d
    had_policy=""; [ -e "$policy" ] && had_policy=1
    [ -n "$had_policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; }
    (export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
     apt-get install -y -qq --no-install-recommends nginx >/dev/null 2>&1 \
       || { apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx >/dev/null; }) || true
    [ -n "$had_policy" ] || rm -f "$policy"
  else
    echo "with-services: nginx missing and not root: the Nginx tests are skipped" >&2
  fi
fi

# Alertmanager: installed but never started by its package (policy-rc.d refuses every start while
# apt runs); the tests run their own on loopback in a temp dir (tests/alertmanager_harness.py).
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "with-services: installing prometheus-alertmanager"
    policy=/usr/sbin/policy-rc.d
    had_policy=""; [ -e "$policy" ] && had_policy=1
    [ -n "$had_policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; }
    (export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
     apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null 2>&1 \
       || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null; }) || true
    [ -n "$had_policy" ] || rm -f "$policy"
  else
    echo "with-services: prometheus-alertmanager missing and not root: the Alerts tests are skipped" >&2
  fi
fi

# Prometheus: Debian's package unpacked (not installed: its postinst would start a server on all
# interfaces); the tests find it in /opt/opsconsole-prometheus (tests/harness.py).
if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /opt/opsconsole-prometheus/usr/bin/prometheus ] \
  && [ "$(id -u)" = 0 ]; then
  echo "with-services: unpacking Debian's prometheus into /opt/opsconsole-prometheus"
  deb_dir=$(mktemp -d)
  (cd "$deb_dir" && apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }) \
    && dpkg -x "$deb_dir"/prometheus_*.deb /opt/opsconsole-prometheus
  rm -rf "$deb_dir"
fi

# fab-classic (Fabric 1) in a venv of its own, for the Fabric 1 fabfile test (tests/fabric_harness.py);
# without it that test builds the venv once in /tmp.
if [ "$(id -u)" = 0 ] && [ ! -x /opt/opsconsole-fab-classic/bin/fab ]; then
  echo "with-services: installing fab-classic into /opt/opsconsole-fab-classic"
  python3 "$(dirname "$0")/../tests/fabric_harness.py" /opt/opsconsole-fab-classic >/dev/null \
    || echo "with-services: fab-classic was not installed" >&2
fi

started_dockerd=""
state_dir=$(mktemp -d /tmp/opsconsole-services.XXXXXX)
cleanup() {
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -rf "$state_dir"
}
trap cleanup EXIT

if command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if ! docker info >/dev/null 2>&1; then
    echo "with-services: starting dockerd (log: $state_dir/dockerd.log)"
    dockerd --host=unix:///var/run/docker.sock >"$state_dir/dockerd.log" 2>&1 &
    started_dockerd=$!
    for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    if ! docker info >/dev/null 2>&1; then
      echo "with-services: dockerd did not come up:" >&2
      tail -20 "$state_dir/dockerd.log" >&2 || true
    fi
  fi
fi

# systemd as PID 1 in a container (tests/systemd_harness.py): its image is built once (~40 s with
# mmdebstrap) and kept in docker, so a run with the image finds it at once.
if [ "$(id -u)" = 0 ] && docker info >/dev/null 2>&1; then
  "$(dirname "$0")/build-systemd-image.sh" || echo "with-services: the systemd test image was not built" >&2
fi

"$@"
