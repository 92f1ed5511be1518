#!/usr/bin/env bash
# qemu.sh: boot a Ferrite ISO in QEMU with the serial console on stdout.
#
# Environment (the Makefile's variables of the same names):
#   ISO        image to boot                        (build/ferrite.iso)
#   SMP        passed verbatim to -smp              (4)
#   MEM        guest memory, -m                     (512M)
#   MACHINE    pc or q35                            (q35)
#   FIRMWARE   bios (SeaBIOS) or uefi (OVMF)        (bios)
#   ACCEL      tcg or kvm                           (tcg)
#   CPU        QEMU -cpu model           (max under TCG, host under KVM)
#   SERIAL     what COM1, COM2, ... connect to, one word each, as -serial  (stdio)
#              takes them: "none stdio" (no COM1, COM2 on stdout),
#              "null stdio" (COM1 discards), "none" (no serial port at all)
#   DEBUG_EXIT yes: QEMU has the isa-debug-exit device; no: it does not, and  (yes)
#              the kernel powers off through ACPI, as on a PC
#   SCREEN     none: no display; window: QEMU's own window; vnc or vnc=:N:  (none)
#              a VNC display (on port 5900+N; :0 by default)
#   MONITOR    a path: QEMU's human monitor listens on that Unix socket   (none)
#              (the harness reads the screen back through it)
#   QEMU_ARGS  extra arguments, word-split, appended
#
# Exit status: 0 when the kernel powered off reporting success through
# isa-debug-exit, 1 when it reported failure, 3 (DEBUG_EXIT=no only) when the
# guest powered the machine off (ACPI S5): the verdict is then only in the
# kernel's log; 2 when QEMU ended any other way (-no-reboot turns a triple
# fault or reset into an exit).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ISO=${ISO:-$here/build/ferrite.iso}
SMP=${SMP:-4}
MEM=${MEM:-512M}
MACHINE=${MACHINE:-q35}
FIRMWARE=${FIRMWARE:-bios}
ACCEL=${ACCEL:-tcg}
DEBUG_EXIT=${DEBUG_EXIT:-yes}
SCREEN=${SCREEN:-none}
MONITOR=${MONITOR:-}
if [ -z "${CPU:-}" ]; then
	# Under KVM, -cpu max asks for MSRs some hosts refuse; host is what KVM can give.
	if [ "$ACCEL" = kvm ]; then CPU=host; else CPU=max; fi
fi

# The kernel writes these to port 0xf4; QEMU exits with (value << 1) | 1.
# Keep in sync with kernel/src/arch/x86_64/power.rs.
EXIT_SUCCESS=$(((0x10 << 1) | 1))
EXIT_FAILURE=$(((0x11 << 1) | 1))

args=(
	-machine "$MACHINE" -cpu "$CPU" -smp "$SMP" -m "$MEM"
	-cdrom "$ISO" -boot d
	-no-reboot
)
case $SCREEN in
none) args+=(-display none) ;;
window) args+=(-display default) ;;
vnc) args+=(-display vnc=:0) ;;
vnc=:[0-9]*) args+=(-display "$SCREEN") ;;
*) echo "qemu.sh: SCREEN must be none, window, vnc or vnc=:N, not '$SCREEN'" >&2; exit 2 ;;
esac
if [ -n "$MONITOR" ]; then
	args+=(-monitor "unix:$MONITOR,server=on,wait=off")
else
	args+=(-monitor none)
fi
# A guest power off and a reset both end QEMU with status 0 (-no-reboot);
# only a power off goes through qemu_system_shutdown_request, which this
# trace point logs (with the cause: 6 is the guest's own power off, 2 a
# monitor's `quit`) to $shutdown_log.
shutdown_log=
case $DEBUG_EXIT in
yes) args+=(-device isa-debug-exit,iobase=0xf4,iosize=0x04) ;;
no)
	shutdown_log=$(mktemp)
	trap 'rm -f "$shutdown_log"' EXIT
	args+=(-trace qemu_system_shutdown_request -D "$shutdown_log")
	;;
*) echo "qemu.sh: DEBUG_EXIT must be yes or no, not '$DEBUG_EXIT'" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086 # one -serial per word
for port in ${SERIAL:-stdio}; do args+=(-serial "$port"); done
case $ACCEL in
tcg) args+=(-accel tcg) ;;
kvm) args+=(-accel kvm) ;;
*) echo "qemu.sh: ACCEL must be tcg or kvm, not '$ACCEL'" >&2; exit 2 ;;
esac
case $FIRMWARE in
bios) ;;
uefi)
	ovmf=/usr/share/ovmf/OVMF.fd
	[ -f "$ovmf" ] || { echo "qemu.sh: $ovmf missing: install the ovmf package (make setup)" >&2; exit 2; }
	args+=(-bios "$ovmf")
	;;
*) echo "qemu.sh: FIRMWARE must be bios or uefi, not '$FIRMWARE'" >&2; exit 2 ;;
esac
# shellcheck disable=SC2206 # word splitting is the point
args+=(${QEMU_ARGS:-})

qemu-system-x86_64 "${args[@]}"
status=$?
if [ "$status" = 0 ] && [ -n "$shutdown_log" ] && grep -q 'qemu_system_shutdown_request.*reason=6' "$shutdown_log"; then
	echo "qemu.sh: the guest powered off ($(grep -o 'reason=[0-9]*' "$shutdown_log" | head -1)); no debug-exit verdict: see the kernel's log" >&2
	exit 3
fi
case $status in
"$EXIT_SUCCESS") exit 0 ;;
"$EXIT_FAILURE") echo "qemu.sh: the kernel reported failure" >&2; exit 1 ;;
*) echo "qemu.sh: QEMU ended with status $status without a kernel verdict (triple fault, reset or QEMU error?)" >&2; exit 2 ;;
esac
