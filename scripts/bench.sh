#!/usr/bin/env bash
# bench.sh: boot Ferrite with the `bench` command-line flag and collect its
# figures.
#
# Builds build/bench.iso (kernel command line: `bench`, then CMDLINE if
# set), boots it with scripts/qemu.sh (so SMP, MEM, FIRMWARE, ACCEL,
# MACHINE, CPU and QEMU_ARGS mean what they mean for `make run`), shows the
# serial log, keeps it in build/bench.log, and writes the figure lines
# (`bench <name> <value> <unit>`) to build/bench.txt.
#
# Exit status: qemu.sh's (0 when the kernel measured every figure and
# powered off reporting success).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
iso=$here/build/bench.iso
log=$here/build/bench.log
out=$here/build/bench.txt

bash "$here/scripts/mkiso.sh" "$here/build/ferrite.elf" "$iso" "bench${CMDLINE:+ $CMDLINE}" || exit 2
ISO=$iso bash "$here/scripts/qemu.sh" | tee "$log"
status=${PIPESTATUS[0]}
# ubench's lines come marked as user output (`[pid] bench …`).
tr -d '\r' <"$log" | sed -E 's/^\[[0-9]+\] //' | grep '^bench ' >"$out"
echo "bench.sh: $(wc -l <"$out") figures in $out (SMP=${SMP:-4}, $(qemu-system-x86_64 --version | head -n 1))" >&2
exit "$status"
