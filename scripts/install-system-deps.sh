#!/usr/bin/env bash
# Installs the Debian packages pathsplice needs (called by `npm install` as its preinstall step).
# Tools: iproute2 (ip netns), tcpdump, tshark, iperf3, curl for tests with real Linux peers;
# libpcap-dev for the optional live-capture driver; cargo/rustc build the TAP addon.
# Without root it only says what is missing; it never fails the install for that.
set -u
pkgs=(iproute2 iputils-ping tcpdump tshark iperf3 curl libpcap-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "pathsplice: missing Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "pathsplice: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || {
  echo "pathsplice: apt-get install failed; tests that need these tools will skip and say why" >&2
}
exit 0
