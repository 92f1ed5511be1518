#!/usr/bin/env bash
# user.sh <target> <out-dir>
#
# Builds the user programs, every binary of the ferrite-user crate
# (userland/), for <target> and copies each to <out-dir>/<name>, where
# mkiso.sh picks them up as boot modules. The list of programs is what cargo
# reports having built, so a new [[bin]] in userland/Cargo.toml needs nothing
# here, and a program that is gone from it is removed from <out-dir>.
#
# Each file is copied (without its debug information) under a temporary name and renamed into place, so that
# an ISO being made at the same moment sees the old program or the new one,
# never half of one.
set -euo pipefail
target=$1 out=$2
here=$(cd "$(dirname "$0")/.." && pwd)

# With this message format, cargo prints its diagnostics on stderr as usual
# and one JSON object per build step on stdout; a binary's names its file.
programs=$(cd "$here" && cargo build --release -p ferrite-user --target "$target" \
	--message-format=json-render-diagnostics | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
if [ -z "$programs" ]; then
	echo "user.sh: cargo built no program for ferrite-user" >&2
	exit 1
fi

mkdir -p "$out"
names=()
for program in $programs; do
	name=$(basename "$program")
	names+=("$name")
	# Without debug information: modules stay in RAM for the whole boot,
	# and the debug sections are most of each file (the unstripped program
	# stays in target/ for gdb and addr2line).
	objcopy --strip-debug "$program" "$out/.$name.tmp"
	mv -f "$out/.$name.tmp" "$out/$name"
done
for file in "$out"/*; do
	[ -e "$file" ] || continue
	case " ${names[*]} " in
	*" $(basename "$file") "*) ;;
	*) rm -f "$file" ;;
	esac
done
echo "user.sh: ${names[*]} in $out"
