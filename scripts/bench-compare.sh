#!/usr/bin/env bash
# bench-compare.sh [runs]: Ferrite's figures beside Linux's, measured in one
# sitting. Runs `make bench` and `make bench-linux` alternately, `runs` times
# each (default 3), with the same variables (SMP, MEM, ...), keeps every run
# under build/compare/, and prints a table: for each figure the median over
# the runs of each side, and Ferrite's median divided by Linux's.
#
# Under TCG the figures are noisy from run to run (bench/linux/README.md):
# the medians over several alternating runs are what the README quotes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
dir=$here/build/compare
rm -rf "$dir"
mkdir -p "$dir"
for i in $(seq 1 "$runs"); do
	echo "bench-compare.sh: run $i of $runs" >&2
	make -s -C "$here" bench >"$dir/ferrite.$i.log" 2>&1 || { echo "bench-compare.sh: make bench failed (see $dir/ferrite.$i.log)" >&2; exit 1; }
	cp "$here/build/bench.txt" "$dir/ferrite.$i"
	make -s -C "$here" bench-linux >"$dir/linux.$i.log" 2>&1 || { echo "bench-compare.sh: make bench-linux failed (see $dir/linux.$i.log)" >&2; exit 1; }
	cp "$here/build/bench-linux.txt" "$dir/linux.$i"
done
echo "SMP=${SMP:-4} MEM=${MEM:-512M} ACCEL=${ACCEL:-tcg}, $runs runs each; $(qemu-system-x86_64 --version | head -n 1); $(nproc) host CPUs"
echo
echo "| figure | unit | Ferrite | Linux | Ferrite / Linux |"
echo "|---|---|---|---|---|"
# Every value of a figure, one side, one line per figure: name unit v1 v2 ...
collect() {
	cat "$@" | awk '{ v[$2] = v[$2] " " $3; u[$2] = $4; if (!($2 in seen)) { seen[$2] = 1; order[n++] = $2 } }
		END { for (i = 0; i < n; i++) print order[i], u[order[i]], v[order[i]] }'
}
median() { # the lower middle value of the numbers given, or n/a
	printf '%s\n' "$@" | grep -v '^n/a$' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else print a[int((NR + 1) / 2)] }'
}
declare -A linux
while read -r name _ values; do
	# shellcheck disable=SC2086 # the values are words on purpose
	linux[$name]=$(median $values)
done < <(collect "$dir"/linux.[0-9]*)
while read -r name unit values; do
	# shellcheck disable=SC2086
	f=$(median $values)
	l=${linux[$name]:-n/a}
	ratio=n/a
	if [ "$f" != n/a ] && [ "$l" != n/a ]; then
		ratio=$(awk -v f="$f" -v l="$l" 'BEGIN { if (l > 0) printf "%.2f", f / l; else print "n/a" }')
	fi
	echo "| $name | $unit | $f | $l | $ratio |"
done < <(collect "$dir"/ferrite.[0-9]*)
