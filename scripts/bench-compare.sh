#!/usr/bin/env bash
# bench-compare.sh [runs]: Ferrite's figures beside Linux's, measured in one
# sitting. Runs `make bench` and `make bench-linux` alternately, `runs` times
# each (default 3), with the same variables (SMP, MEM, ...), keeps every run
# under build/compare/, and prints a table: for each figure the median over
# the runs of each side, and Ferrite's median divided by Linux's.
#
# Under TCG the figures are noisy from run to run (bench/linux/README.md):
# the medians over several alternating runs are what the README quotes.
#
# `bench-compare.sh --table <dir>` prints the table of runs kept earlier.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$here/build/compare
runs=${1:-3}
table_only=no
if [ "$runs" = --table ]; then
	table_only=yes
	dir=${2:?usage: bench-compare.sh --table <dir>}
	runs=$(find "$dir" -maxdepth 1 -name 'ferrite.[0-9]*' ! -name '*.log' | wc -l)
else
	rm -rf "$dir"
	mkdir -p "$dir"
fi
for i in $(seq 1 "$runs"); do
	[ "$table_only" = yes ] && break
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
median() { # the lower middle value of the numbers given (n/a left out), or n/a
	printf '%s\n' "$@" | awk '$1 != "n/a"' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else print a[int((NR + 1) / 2)] }'
}
# The runs of one side, by number (not their logs).
runs_of() {
	for i in $(seq 1 "$runs"); do echo "$dir/$1.$i"; done
}
declare -A linux
while read -r name _ values; do
	# shellcheck disable=SC2086 # the values are words on purpose
	linux[$name]=$(median $values)
done < <(mapfile -t files < <(runs_of linux) && collect "${files[@]}")
while read -r name unit values; do
	# shellcheck disable=SC2086
	f=$(median $values)
	l=${linux[$name]:-n/a}
	ratio=n/a
	if [ "$f" != n/a ] && [ "$l" != n/a ]; then
		ratio=$(awk -v f="$f" -v l="$l" 'BEGIN { if (l > 0) printf "%.2f", f / l; else print "n/a" }')
	fi
	echo "| $name | $unit | $f | $l | $ratio |"
done < <(mapfile -t files < <(runs_of ferrite) && collect "${files[@]}")
