# Ferrite's build driver. The logic lives in Cargo and scripts/; this file
# only names the steps.
#
# Targets:
#   make run     build the ISO and boot it in QEMU, serial console on stdout
#   make test    formatting, clippy, host unit tests and every QEMU boot test
#   make iso     build/ferrite.iso (hybrid BIOS + UEFI, for QEMU or a USB stick):
#                the kernel and every user program, as multiboot2 modules
#   make kernel  build/ferrite.elf only
#   make user    the user programs (userland/src/bin/), each copied to
#                build/user/<name>
#   make debug   like run, but QEMU waits for gdb on localhost:1234
#   make bench   boot with the `bench` flag: every figure on the console and
#                in build/bench.txt (same variables as run)
#   make bench-linux  the same figures from Debian 12's Linux (6.1) in the same
#                QEMU machine, bench/linux/bench.c as /init; build/bench-linux.txt
#   make bench-compare  both, alternately, 3 times each; a table of medians
#                and Ferrite/Linux ratios
#   make setup   install missing host packages (apt, as root)
#   make clean   remove build/ and target/
#
# Variables (make VAR=value):
#   SMP=4            passed verbatim to QEMU -smp (e.g. 8, or 4,maxcpus=8)
#   MEM=512M         guest memory
#   CMDLINE=         kernel command line, e.g. 'test=all log=debug'
#   FIRMWARE=bios    bios (SeaBIOS) or uefi (OVMF)
#   ACCEL=tcg        tcg, or kvm where /dev/kvm works
#   MACHINE=q35      QEMU machine: q35 or pc
#   CPU=             QEMU CPU model; empty: max under TCG, host under KVM
#                    (qemu64 has no x2APIC)
#   SERIAL=stdio     what COM1, COM2, ... connect to, a QEMU -serial value each:
#                    'none stdio' (no COM1, COM2 on the terminal), 'none' (no port)
#   DEBUG_EXIT=yes   yes: QEMU has the isa-debug-exit device, so QEMU's exit
#                    status carries the kernel's verdict; no: leave it out, and
#                    the kernel powers off through ACPI S5 as on a PC
#   SCREEN=none      QEMU's display: none, window (a window of its own), or
#                    vnc / vnc=:N (a VNC server on port 5900+N)
#   MONITOR=         a socket path: QEMU's monitor listens there (for screendump)
#   QEMU_ARGS=       extra QEMU arguments, appended
#   GRUB_TIMEOUT=0   seconds GRUB shows its menu (raise it for a USB stick)

SMP ?= 4
MEM ?= 512M
CMDLINE ?=
FIRMWARE ?= bios
ACCEL ?= tcg
MACHINE ?= q35
CPU ?=
SERIAL ?= stdio
DEBUG_EXIT ?= yes
SCREEN ?= none
MONITOR ?=
QEMU_ARGS ?=
GRUB_TIMEOUT ?= 0

export SMP MEM FIRMWARE ACCEL MACHINE CPU SERIAL DEBUG_EXIT SCREEN MONITOR QEMU_ARGS GRUB_TIMEOUT

KERNEL_TARGET := x86_64-unknown-none
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
KERNEL_ELF := build/ferrite.elf
ISO := build/ferrite.iso
# User programs are built for the host target: it has SSE (see userland/build.rs).
USER_TARGET := x86_64-unknown-linux-gnu
USER_DIR := build/user

.PHONY: all setup kernel user iso run debug bench bench-linux bench-compare test check host-test qemu-test clean

all: iso

setup:
	@bash scripts/setup.sh

kernel:
	cargo build --release -p ferrite-kernel --target $(KERNEL_TARGET)
	@mkdir -p build
	cp $(TARGET_DIR)/$(KERNEL_TARGET)/release/ferrite $(KERNEL_ELF)

user:
	bash scripts/user.sh $(USER_TARGET) $(USER_DIR)

iso: setup kernel user
	USER_DIR=$(USER_DIR) bash scripts/mkiso.sh $(KERNEL_ELF) $(ISO) "$(CMDLINE)"

# qemu.sh's status 3 (DEBUG_EXIT=no: the guest powered off through ACPI, with
# its verdict only on its console) is how a run on a PC ends, not an error.
run: iso
	ISO=$(ISO) bash scripts/qemu.sh || { status=$$?; [ $$status = 3 ] || exit $$status; }

bench: setup kernel user
	bash scripts/bench.sh

# Downloads (apt-get download, once) and unpacks Debian's kernel into
# build/linux/; installs only missing host tools (apt, as root). See bench/linux/.
bench-linux:
	bash scripts/bench-linux.sh

bench-compare:
	bash scripts/bench-compare.sh

debug: iso
	@echo "QEMU is waiting for gdb. In another terminal:"
	@echo "    gdb $(KERNEL_ELF) -ex 'target remote localhost:1234'"
	ISO=$(ISO) QEMU_ARGS="-s -S $(QEMU_ARGS)" bash scripts/qemu.sh

check:
	cargo fmt --all --check
	cargo clippy --release -p ferrite-kernel --target $(KERNEL_TARGET) -- -D warnings
	cargo clippy --release -p ferrite-user --target $(USER_TARGET) -- -D warnings
	cargo clippy -p ferrite-kcore -p ferrite-screen -p ferrite-ukit -p ferrite-tests --all-targets -- -D warnings

host-test:
	cargo test -p ferrite-kcore -p ferrite-screen -p ferrite-ukit

# The harness builds the kernel, the user programs and its ISOs itself; logs
# go to build/test-logs/.
qemu-test: setup
	cargo test -p ferrite-tests -- --test-threads=4

test: setup check host-test qemu-test

clean:
	rm -rf build target
