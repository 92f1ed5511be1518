#!/usr/bin/env bash
# bench-linux.sh: the peer of `make bench` on Linux. Boots Debian 12's own
# Linux kernel (the 6.1 that linux-image-amd64 names) in the QEMU machine
# scripts/qemu.sh gives Ferrite, with bench/linux/bench.c as /init, and
# collects its figures (`bench <name> <value> <unit>`, the names of
# Ferrite's figures).
#
# Builds, once, into build/linux/ (later runs reuse it):
#   boot/vmlinuz-*         from `apt-get download linux-image-6.1.*-amd64`,
#                          unpacked with dpkg-deb (nothing is installed);
#                          LINUX_DEB=<file.deb> uses that package instead
#   init                   bench.c, gcc -O2 -static -pthread
#   initramfs.cpio.gz      /init and /dev/console, newc format, written here
# Then boots it with -kernel/-initrd, shows the serial console, keeps it in
# build/bench-linux.log and writes the figure lines to build/bench-linux.txt.
#
# Environment (as for scripts/qemu.sh and the Makefile): SMP, MEM, MACHINE,
# CPU, ACCEL, FIRMWARE, QEMU_ARGS; BENCH_LINUX_TIMEOUT, seconds before the
# boot is abandoned (600).
#
# Missing host packages (gcc, libc6-dev, qemu-system-x86, ovmf for
# FIRMWARE=uefi) are installed with apt when run as root; otherwise the
# command to run is printed.
#
# Exit status: 0 when every figure line appeared and /init reported that it
# measured them all; 1 when it failed or a figure is missing; 2 when it
# could not be built or run, or the boot timed out.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=$here/bench/linux/bench.c
dir=$here/build/linux
log=$here/build/bench-linux.log
out=$here/build/bench-linux.txt

SMP=${SMP:-4}
MEM=${MEM:-512M}
MACHINE=${MACHINE:-q35}
FIRMWARE=${FIRMWARE:-bios}
ACCEL=${ACCEL:-tcg}
if [ -z "${CPU:-}" ]; then
	if [ "$ACCEL" = kvm ]; then CPU=host; else CPU=max; fi
fi
timeout_s=${BENCH_LINUX_TIMEOUT:-600}
ovmf=/usr/share/ovmf/OVMF.fd

say() { echo "bench-linux.sh: $*" >&2; }
die() { say "$@"; exit 2; }

# --- host packages -----------------------------------------------------------
missing=()
need() { # need <package> <test command...>
	local pkg=$1
	shift
	"$@" >/dev/null 2>&1 || missing+=("$pkg")
}
need gcc command -v gcc
need libc6-dev test -f /usr/lib/x86_64-linux-gnu/libc.a
need libc6-dev test -f /usr/include/stdio.h
need gzip command -v gzip
need qemu-system-x86 command -v qemu-system-x86_64
if [ "$FIRMWARE" = uefi ]; then need ovmf test -f "$ovmf"; fi
if [ ${#missing[@]} -gt 0 ]; then
	# One of each.
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	say "missing: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		say "run as root, or install by hand:"
		echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
		exit 2
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

case $ACCEL in tcg | kvm) ;; *) die "ACCEL must be tcg or kvm, not '$ACCEL'" ;; esac
case $FIRMWARE in bios | uefi) ;; *) die "FIRMWARE must be bios or uefi, not '$FIRMWARE'" ;; esac

mkdir -p "$dir"

# --- the kernel: Debian's linux-image-6.1.*-amd64, unpacked, never installed --
# The image package of Debian 12's kernel: the linux-image-6.1.* that some
# version of linux-image-amd64 depends on (not a newer one from backports).
debian_image_package() {
	local show
	show=$(apt-cache show linux-image-amd64 2>/dev/null || true)
	sed -n 's/^Depends:.*\(linux-image-6\.1\.[0-9]*-[0-9]*-amd64\).*/\1/p' <<<"$show" | sort -V | tail -n 1
}

# Unpacks the kernel (only boot/) of the package file $1 into $dir.
unpack_kernel() {
	local deb=$1 tmp
	tmp=$(mktemp -d "$dir/unpack.XXXXXX")
	if ! dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*' './boot/config-*'; then
		rm -rf "$tmp"
		die "cannot unpack a kernel from $deb"
	fi
	mkdir -p "$dir/boot"
	mv "$tmp"/boot/* "$dir/boot/"
	rm -rf "$tmp"
	dpkg-deb -f "$deb" Package Version | tr '\n' ' ' >"$dir/kernel-package.txt"
	echo >>"$dir/kernel-package.txt"
}

find_vmlinuz() { compgen -G "$dir/boot/vmlinuz-*" | sort -V | tail -n 1; }

vmlinuz=$(find_vmlinuz || true)
if [ -z "$vmlinuz" ]; then
	if [ -n "${LINUX_DEB:-}" ]; then
		[ -f "$LINUX_DEB" ] || die "LINUX_DEB=$LINUX_DEB: no such file"
		unpack_kernel "$LINUX_DEB"
	else
		pkg=$(debian_image_package)
		if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
			say "apt knows no linux-image-amd64: updating the package lists"
			apt-get update -q >&2 || true
			pkg=$(debian_image_package)
		fi
		[ -n "$pkg" ] || die "apt knows no Debian 12 kernel (linux-image-amd64 -> linux-image-6.1.*-amd64):" \
			"check the apt sources and run 'apt-get update', or download a linux-image-6.1.*-amd64 .deb" \
			"yourself and run again with LINUX_DEB=/path/to/it.deb"
		dl=$(mktemp -d "$dir/download.XXXXXX")
		say "downloading $pkg (apt-get download; nothing is installed)"
		fetched=no
		for attempt in 1 2; do
			if (cd "$dl" && apt-get download "$pkg" >&2); then
				fetched=yes
				break
			fi
			# Stale package lists name files the archive no longer has.
			if [ "$attempt" = 1 ] && [ "$(id -u)" -eq 0 ]; then
				say "download failed: updating the package lists and trying again"
				apt-get update -q >&2 || true
			else
				break
			fi
		done
		if [ "$fetched" = no ]; then
			rm -rf "$dl"
			die "cannot download $pkg: check the network and apt's sources (as root: apt-get update)," \
				"or download a linux-image-6.1.*-amd64 .deb yourself and run again with LINUX_DEB=/path/to/it.deb"
		fi
		unpack_kernel "$(compgen -G "$dl/*.deb" | head -n 1)"
		rm -rf "$dl"
	fi
	vmlinuz=$(find_vmlinuz || true)
	[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in the kernel package"
fi
say "kernel: $vmlinuz ($(cat "$dir/kernel-package.txt" 2>/dev/null || echo 'package unknown'))"

# --- /init ------------------------------------------------------------------
init=$dir/init
cflags=(-O2 -static -pthread -Wall -Wextra)
if [ ! -x "$init" ] || [ "$src" -nt "$init" ] || [ "$0" -nt "$init" ]; then
	say "gcc ${cflags[*]} bench/linux/bench.c"
	gcc "${cflags[@]}" -o "$init.tmp" "$src" || die "cannot compile $src"
	mv "$init.tmp" "$init"
fi

# --- the initramfs: newc cpio, gzip -----------------------------------------
# Written here rather than with cpio(1): /dev/console must be a device node,
# which cpio could only copy from a tree made with mknod (as root).
initramfs=$dir/initramfs.cpio.gz
newc_entry() { # newc_entry <name> <mode> <rdev major> <rdev minor> [file]
	local name=$1 mode=$2 major=$3 minor=$4 file=${5:-} size=0 namesize pad
	[ -n "$file" ] && size=$(stat -c %s "$file")
	namesize=$((${#name} + 1))
	# ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$newc_ino" "$mode" 0 0 1 0 "$size" 0 0 "$major" "$minor" "$namesize" 0
	printf '%s\0' "$name"
	pad=$(((4 - (110 + namesize) % 4) % 4))
	head -c "$pad" /dev/zero
	if [ -n "$file" ]; then
		cat "$file"
		head -c $(((4 - size % 4) % 4)) /dev/zero
	fi
	newc_ino=$((newc_ino + 1))
}
if [ ! -f "$initramfs" ] || [ "$init" -nt "$initramfs" ] || [ "$0" -nt "$initramfs" ]; then
	newc_ino=1
	{
		newc_entry . $((0040755)) 0 0
		newc_entry dev $((0040755)) 0 0
		newc_entry dev/console $((0020600)) 5 1
		newc_entry init $((0100755)) 0 0 "$init"
		newc_entry 'TRAILER!!!' 0 0 0
	} | gzip -9 -n >"$initramfs.tmp"
	mv "$initramfs.tmp" "$initramfs"
fi

# --- QEMU: scripts/qemu.sh's machine, with -kernel/-initrd -------------------
# shellcheck disable=SC2054 # the commas are QEMU's option syntax
args=(
	-machine "$MACHINE" -cpu "$CPU" -smp "$SMP" -m "$MEM"
	-kernel "$vmlinuz" -initrd "$initramfs"
	-append "console=ttyS0 quiet panic=-1"
	-serial stdio -display none -monitor none
	-device isa-debug-exit,iobase=0xf4,iosize=0x04
	-no-reboot
	-accel "$ACCEL"
)
if [ "$FIRMWARE" = uefi ]; then
	args+=(-bios "$ovmf")
fi
# shellcheck disable=SC2206 # word splitting is the point
args+=(${QEMU_ARGS:-})

say "SMP=$SMP MEM=$MEM MACHINE=$MACHINE CPU=$CPU ACCEL=$ACCEL FIRMWARE=$FIRMWARE; $(qemu-system-x86_64 --version | head -n 1)"
started=$(date +%s)
set +e
# stdin is not the terminal: nothing reads it, and QEMU must not stop on SIGTTIN.
timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 "${args[@]}" </dev/null | tee "$log"
status=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - started))

# The console as lines: no carriage returns, no terminal escapes (OVMF clears the screen).
console() { tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g'; }
console | grep '^bench ' >"$out" || true
count=$(wc -l <"$out")
say "$count figures in $out after ${elapsed} s"
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
	die "no power-off within $timeout_s s (BENCH_LINUX_TIMEOUT): stopped QEMU"
fi
[ "$status" -eq 0 ] || die "QEMU ended with status $status"

done_line=$(console | sed -n 's/^bench-linux: done: \([0-9]*\) figures$/\1/p' | tail -n 1)
if [ -z "$done_line" ]; then
	say "/init did not report success (see $log)"
	exit 1
fi
# Every figure of Ferrite's suite, and as many lines as /init printed.
fail=0
for name in null_syscall context_switch thread_spawn_join ipc_same_cpu ipc_same_cpu_threads ipc_cross_cpu wakeup_cross_cpu \
	tlb_shootdown yield_throughput_1cpu boot_to_init ap_bringup ipi_roundtrip; do
	grep -q "^bench $name " "$out" || { say "figure $name missing"; fail=1; }
done
if [ "$count" -ne "$done_line" ]; then
	say "/init printed $done_line figures, but $count reached $out"
	fail=1
fi
exit "$fail"
