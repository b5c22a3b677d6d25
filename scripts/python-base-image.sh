#!/usr/bin/env bash
# Makes the Python base image the Dockerfiles build on, where no public image
# registry can be reached: a Debian bookworm minbase with Python 3.11 and venv,
# built by debootstrap from this machine's own Debian mirror and imported into
# podman's local storage. Usage: python-base-image.sh IMAGE_NAME
set -euo pipefail
image=$1
# The first Debian mirror in this machine's apt sources (deb822 or one-line form).
mirror=${DEBIAN_MIRROR:-$(
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}'; } | grep -v security | head -n 1 || true
)}
[ -n "$mirror" ] || { echo "no Debian mirror in /etc/apt: set DEBIAN_MIRROR" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$mirror" >/dev/null
# Package lists, downloaded packages, documentation and translations are of no
# use to a service (about 50 MB).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
tar -C "$root" -c . | podman import --quiet --change 'CMD ["python3"]' - "$image" >/dev/null
echo "$image: $(podman image inspect --format '{{.Size}}' "$image") bytes"
