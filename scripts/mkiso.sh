#!/usr/bin/env bash
# mkiso.sh <kernel.elf> <out.iso> [kernel command line]
#
# Builds a hybrid BIOS + UEFI ISO with grub-mkrescue: the same image boots
# under SeaBIOS, under OVMF, and from a USB stick on a real PC.
#
# Every user program in USER_DIR (default build/user, filled by `make user`)
# goes into /boot/ and becomes a multiboot2 module named after its file, in
# every menu entry: init first (the kernel starts the first module), then
# the rest in sorted order. Two deliberately malformed modules join them for
# the kernel's tests of its ELF loader: `notelf` (text, not ELF) and
# `truncated` (the first TRUNCATED_LEN bytes of init).
#
# Environment: GRUB_TIMEOUT (seconds the menu waits, default 0), USER_DIR,
# GFXPAYLOAD (a GRUB gfxpayload value, e.g. 1024x768x24 or text, set in
# every entry; default none: the mode the kernel's multiboot2 header asks
# for).
set -euo pipefail
kernel=$1 out=$2 cmdline=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
user_dir=${USER_DIR:-$here/build/user}
# Long enough for the ELF header, short of the program headers' end.
TRUNCATED_LEN=200

gfxpayload=${GFXPAYLOAD:-}
case $gfxpayload in
*[!A-Za-z0-9,]*) echo "mkiso: GFXPAYLOAD may hold letters, digits and commas only: $gfxpayload" >&2; exit 2 ;;
esac
gfx_line=${gfxpayload:+set gfxpayload=$gfxpayload}

case $cmdline in
*[\;\&\|\$\`\"\'\\]*) echo "mkiso: the command line may not contain ; & | \$ \` quotes or backslashes: $cmdline" >&2; exit 2 ;;
esac

if [ ! -f "$user_dir/init" ]; then
	echo "mkiso: no init in $user_dir: build the user programs first (make user)" >&2
	exit 2
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/ferrite-iso.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/boot/grub"
cp "$kernel" "$stage/boot/ferrite"

# The modules, init first and then sorted by name (in the C locale, so the
# order does not depend on the machine).
others=()
for program in "$user_dir"/*; do
	[ -f "$program" ] || continue
	name=$(basename "$program")
	case $name in
	*[!A-Za-z0-9_-]*) echo "mkiso: user program '$name' needs a name of letters, digits, - and _" >&2; exit 2 ;;
	ferrite | grub | notelf | truncated) echo "mkiso: user program '$name' has a name mkiso.sh uses itself" >&2; exit 2 ;;
	esac
	cp "$program" "$stage/boot/$name"
	[ "$name" = init ] || others+=("$name")
done
# Longer than an ELF header, so that the loader gets as far as the magic.
printf 'This boot module is plain text, not an ELF executable: the kernel must refuse to run it.\n' \
	>"$stage/boot/notelf"
head -c "$TRUNCATED_LEN" "$user_dir/init" >"$stage/boot/truncated"
others+=(notelf truncated)
mapfile -t others < <(printf '%s\n' "${others[@]}" | LC_ALL=C sort)
modules="init ${others[*]}"

# '#' is the sed delimiter and cannot appear in a GRUB argument anyway.
# Comment lines keep their placeholders (they name them). A line that is
# only @MODULES@ becomes one module2 line per module, with its indentation.
sed -e "/^[[:space:]]*#/!s#@CMDLINE@#${cmdline}#g" -e "/^[[:space:]]*#/!s#@TIMEOUT@#${GRUB_TIMEOUT:-0}#g" \
	-e "s#^\([[:space:]]*\)@GFXPAYLOAD@\$#\1${gfx_line}#" \
	"$here/grub/grub.cfg" |
	awk -v modules="$modules" '
		/^[ \t]*@MODULES@[ \t]*$/ {
			indent = $0; sub(/@MODULES@.*/, "", indent)
			n = split(modules, names, " ")
			for (i = 1; i <= n; i++) print indent "module2 /boot/" names[i] " " names[i]
			next
		}
		{ print }
	' >"$stage/boot/grub/grub.cfg"

mkdir -p "$(dirname "$out")"
# grub-mkrescue writes to a temporary name first so that a parallel reader
# never sees half an image.
if ! grub-mkrescue -o "$out.tmp" "$stage" >"$stage.log" 2>&1; then
	cat "$stage.log" >&2; rm -f "$stage.log" "$out.tmp"
	exit 1
fi
rm -f "$stage.log"
mv "$out.tmp" "$out"
