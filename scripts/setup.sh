#!/usr/bin/env bash
# Ferrite host setup: make sure the tools that `make run` and `make test` need
# are installed. As root, installs what is missing through apt (QEMU from
# bookworm-backports when Debian's own is older than 8, because TCG emulates
# x2APIC only from QEMU 8 on); otherwise prints the exact command to run.
#
# Idempotent and quick when everything is present: it only looks at PATH and
# a few files, and touches apt only when something is missing.
set -euo pipefail

# Rust: rustup installs the `targets` of rust-toolchain.toml only when it
# installs the toolchain itself; a machine that already has the pinned
# toolchain (without the bare-metal target) gets the target added here.
if command -v rustup >/dev/null 2>&1; then
	cd "$(dirname "$0")/.."
	for target in $(sed -n 's/^targets *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '",'); do
		if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
			echo "setup: adding the Rust target $target" >&2
			rustup target add "$target" >&2
		fi
	done
	cd - >/dev/null
fi

missing=()
need() { # need <package> <test command...>
	local pkg=$1; shift
	"$@" >/dev/null 2>&1 || missing+=("$pkg")
}
have() { command -v "$1"; }

need qemu-system-x86 have qemu-system-x86_64
need grub-common have grub-mkrescue
need grub-pc-bin test -d /usr/lib/grub/i386-pc
need grub-efi-amd64-bin test -d /usr/lib/grub/x86_64-efi
need xorriso have xorriso
need mtools have mformat
need ovmf test -f /usr/share/ovmf/OVMF.fd

qemu_major() {
	qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'
}

# Is QEMU older than 8 (or absent) while a newer one could come from backports?
want_backports=no
if grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
	major=$(qemu_major || true)
	if [ -z "$major" ] || [ "$major" -lt 8 ]; then want_backports=yes; fi
fi

if [ ${#missing[@]} -eq 0 ] && [ "$want_backports" = no ]; then
	exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: missing: ${missing[*]}" >&2
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: run as root, or install by hand:" >&2
	echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]:-qemu-system-x86}" >&2
	if [ "$want_backports" = yes ]; then
		echo "    (QEMU 8 or later from bookworm-backports is preferred: it emulates x2APIC)" >&2
	fi
	[ ${#missing[@]} -eq 0 ] && exit 0
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# bookworm-backports, reusing the URI of the machine's own Debian source so
# that no mirror name is written anywhere by us.
if [ "$want_backports" = yes ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	uri=""
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' /etc/apt/sources.list.d/debian.sources)
		[ -n "$uri" ] || uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
	fi
	if [ -n "$uri" ]; then
		echo "setup: enabling bookworm-backports from $uri" >&2
		printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"$uri" >/etc/apt/sources.list.d/ferrite-backports.sources
	else
		echo "setup: no Debian source found to derive bookworm-backports from; using Debian's QEMU" >&2
	fi
fi

apt-get update -q >&2
qemu_pkg=qemu-system-x86
# (Captured first: `grep -q` closing the pipe early would fail it under pipefail.)
policy=$(apt-cache policy qemu-system-x86 2>/dev/null || true)
if [ "$want_backports" = yes ] && [[ $policy == *bookworm-backports* ]]; then
	# Backports first; if that fails (a partial mirror, say), fall back to Debian's own.
	# Without recommends: they pull in about 200 packages (GUI, spice, speech
	# data) that headless TCG runs never use; seabios and ipxe-qemu are
	# dependencies, and ovmf comes with the rest below.
	if apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 >&2; then
		qemu_pkg=""
	else
		echo "setup: QEMU from backports failed to install; using Debian's" >&2
	fi
fi
pkgs=()
for p in "${missing[@]}"; do
	[ "$p" = qemu-system-x86 ] && [ -z "$qemu_pkg" ] && continue
	pkgs+=("$p")
done
if [ ${#pkgs[@]} -gt 0 ]; then
	apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2
fi
echo "setup: $(qemu-system-x86_64 --version | head -n 1)" >&2
