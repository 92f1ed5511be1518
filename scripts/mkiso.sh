#!/usr/bin/env bash
# mkiso.sh <kernel.elf> <out.iso> [kernel command line]
#
# Builds a hybrid BIOS + UEFI ISO with grub-mkrescue: the same image boots
# under SeaBIOS, under OVMF, and from a USB stick on a real PC.
# GRUB_TIMEOUT (seconds the menu waits, default 0) comes from the environment.
set -euo pipefail
kernel=$1 out=$2 cmdline=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)

case $cmdline in
*[\;\&\|\$\`\"\'\\]*) echo "mkiso: the command line may not contain ; & | \$ \` quotes or backslashes: $cmdline" >&2; exit 2 ;;
esac

stage=$(mktemp -d "${TMPDIR:-/tmp}/ferrite-iso.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/boot/grub"
cp "$kernel" "$stage/boot/ferrite"
# '#' is the sed delimiter and cannot appear in a GRUB argument anyway.
sed -e "s#@CMDLINE@#${cmdline}#g" -e "s#@TIMEOUT@#${GRUB_TIMEOUT:-0}#g" \
	"$here/grub/grub.cfg" >"$stage/boot/grub/grub.cfg"

mkdir -p "$(dirname "$out")"
# grub-mkrescue writes to a temporary name first so that a parallel reader
# never sees half an image.
if ! grub-mkrescue -o "$out.tmp" "$stage" >"$stage.log" 2>&1; then
	cat "$stage.log" >&2; rm -f "$stage.log" "$out.tmp"
	exit 1
fi
rm -f "$stage.log"
mv "$out.tmp" "$out"
