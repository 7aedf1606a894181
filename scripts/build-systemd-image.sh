#!/bin/sh
# Builds the docker image the systemd tests boot (systemd as PID 1, sshd, journald; units from
# tests/systemd/) unless it exists, built from this recipe. Root only (mmdebstrap); quiet; ~40 s cold, nothing when cached.
# usage: scripts/build-systemd-image.sh [--force]
set -eu
IMAGE=opsc-test/systemd:bookworm
HERE=$(cd "$(dirname "$0")/.." && pwd)/tests/systemd
# the image is labelled with a hash of the recipe (tests/systemd/*): a changed recipe rebuilds it
RECIPE=$(cat "$HERE"/* | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "opsc.recipe" }}' "$IMAGE" 2>/dev/null || true)
if [ "${1:-}" != --force ] && [ "$have" = "$RECIPE" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "build-systemd-image: not root: $IMAGE not built, the systemd tests fail" >&2
  exit 0
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "build-systemd-image: installing mmdebstrap"
  (export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
   apt-get install -y -qq mmdebstrap >/dev/null 2>&1 \
     || { apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; })
fi
work=$(mktemp -d /tmp/opsc-systemd-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "build-systemd-image: building $IMAGE (log: $work/build.log while it runs)"
if ! nice -n 10 sh "$HERE/build-rootfs.sh" "$work/rootfs.tar" >"$work/build.log" 2>&1; then
  tail -30 "$work/build.log" >&2
  exit 1
fi
docker import -c 'CMD ["/usr/local/sbin/sd-entry.sh"]' -c 'ENV container=docker' \
  -c "LABEL opsc.recipe=$RECIPE" "$work/rootfs.tar" "$IMAGE" >/dev/null
