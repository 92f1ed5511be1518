/*
 * Multiboot2 header and the 32-bit entry point.
 *
 * GRUB enters _start in 32-bit protected mode, paging off, with the
 * multiboot2 magic in eax and the physical address of the boot information
 * in ebx. This code checks both, checks that the CPU has long mode, builds
 * the boot page tables, enters long mode and jumps to the kernel proper in
 * the higher half, on a stack with an unmapped guard page below it.
 *
 * GRUB may load the image anywhere the relocatable header tag allows, so
 * this code runs wherever it was loaded: every address it uses is its link
 * address plus the load offset (edi), and the higher half maps onto the
 * image where it lies. kernel_main gets the offset.
 *
 * Boot page tables (all in .boot.bss, below 4 GiB):
 *   PML4[0], PML4[256] -> boot_pdpt_low -> boot_pd: 0..4 GiB in 2 MiB pages,
 *       identity and at the direct-map offset (used until mem/paging.rs
 *       builds the real tables);
 *   PML4[511] -> boot_pdpt_high[510] -> boot_pd_high -> boot_pt_high: the
 *       first 16 MiB at KERNEL_VMA in 4 KiB pages, less the stack guard.
 * Constants come from Rust (arch/x86_64/boot.rs).
 */

.section .multiboot2, "a"
.balign 8
mb2_header:
    .long {mb2_header_magic}
    .long 0                                     /* architecture: i386 */
    .long mb2_header_end - mb2_header
    .long 0x100000000 - ({mb2_header_magic} + (mb2_header_end - mb2_header))
    /* Relocatable tag: the image may be loaded anywhere from 2 MiB up to
     * 1 GiB, on a page boundary, as low as there is room (preference 1),
     * for firmware that owns the 2 MiB area. Everything below runs at
     * whatever address it was loaded at (see _start). */
    .balign 8
    .short 10, 0
    .long 24
    .long {mb2_reloc_min}, {mb2_reloc_max}, 4096, 1
    /* Module alignment tag: load boot modules on page boundaries. */
    .balign 8
    .short 6, 0
    .long 8
    /* Framebuffer tag: a linear framebuffer, 1024x768 at 32 bits a pixel
     * if the firmware has it, else what GRUB finds closest; optional (flag
     * 1), so a machine without one still boots, in text mode. */
    .balign 8
    .short 5, 1
    .long 20
    .long 1024, 768, 32
    /* End tag. */
    .balign 8
    .short 0, 0
    .long 8
mb2_header_end:

.section .boot.bss, "aw", @nobits
.balign 4096
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pd:        .skip 4096 * 4
boot_pdpt_high: .skip 4096
boot_pd_high:   .skip 4096
boot_pt_high:   .skip 4096 * 8
boot32_stack:   .skip 1024
boot32_stack_top:

.section .boot.data, "a"
.balign 8
boot_gdt:
    .quad 0
    .quad {gdt_code64}
    .quad {gdt_data}
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

msg_bad_magic:
    .asciz "ferrite: not started by a multiboot2 boot loader (bad magic in eax); halting\r\n"
msg_no_cpuid:
    .asciz "ferrite: this CPU has no CPUID instruction; halting\r\n"
msg_no_long_mode:
    .asciz "ferrite: this CPU does not support 64-bit long mode; halting\r\n"

.section .boot.text, "ax"
.code32
.global _start
_start:
    cli
    cld
    mov esi, ebx                    /* keep the info pointer */
    cmp eax, {mb2_boot_magic}
    jne .Lbad_magic

    /* Where GRUB loaded the image: the load base address tag (type 21) of
     * the boot information (8-byte aligned tags after an 8-byte header;
     * type 0 ends them). edi = load address - link address, for good: every
     * reference to this file's symbols below adds it, as this code is not
     * linked where it runs. No tag: loaded where linked. */
    xor edi, edi
    lea ecx, [esi + 8]
1:  mov eax, [ecx]
    test eax, eax
    jz 3f
    cmp eax, {mb2_tag_load_base}
    je 2f
    mov eax, [ecx + 4]
    add eax, 7
    and eax, ~7
    add ecx, eax
    jmp 1b
2:  mov edi, [ecx + 8]
    sub edi, offset __kernel_phys_start
3:  lea esp, [edi + boot32_stack_top]

    /* CPUID exists if EFLAGS.ID can be toggled. */
    pushfd
    pop eax
    mov ecx, eax
    xor eax, {eflags_id}
    push eax
    popfd
    pushfd
    pop eax
    push ecx
    popfd
    xor eax, ecx
    jz .Lno_cpuid

    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb .Lno_long_mode
    mov eax, 0x80000001
    cpuid
    test edx, {cpuid_long_mode}
    jz .Lno_long_mode

    /* The kernel's first moment, for time since boot (every CPU with long
     * mode has a TSC): kept in ebx:ebp, which nothing below touches, and
     * passed to kernel_main. */
    rdtsc
    mov ebx, edx
    mov ebp, eax

    /* boot_pd: 2048 large pages covering 0..4 GiB. */
    xor ecx, ecx
1:  mov eax, ecx
    shl eax, 21
    or eax, {pte_large}
    mov edx, ecx
    shr edx, 11
    mov [edi + ecx * 8 + boot_pd], eax
    mov [edi + ecx * 8 + boot_pd + 4], edx
    inc ecx
    cmp ecx, 2048
    jb 1b

    /* boot_pdpt_low: four entries, one per page of boot_pd. */
    lea eax, [edi + boot_pd]
    or eax, {pte_table}
    xor ecx, ecx
2:  mov [edi + ecx * 8 + boot_pdpt_low], eax
    add eax, 4096
    inc ecx
    cmp ecx, 4
    jb 2b

    lea eax, [edi + boot_pdpt_low]
    or eax, {pte_table}
    mov [edi + boot_pml4], eax
    mov [edi + boot_pml4 + 256 * 8], eax

    /* The higher half: PML4[511] -> PDPT[510] -> PD[0..8] -> 4 KiB pages,
     * KERNEL_VMA + x -> x + the load offset. */
    lea eax, [edi + boot_pdpt_high]
    or eax, {pte_table}
    mov [edi + boot_pml4 + 511 * 8], eax
    lea eax, [edi + boot_pd_high]
    or eax, {pte_table}
    mov [edi + boot_pdpt_high + 510 * 8], eax

    lea eax, [edi + boot_pt_high]
    or eax, {pte_table}
    xor ecx, ecx
3:  mov [edi + ecx * 8 + boot_pd_high], eax
    add eax, 4096
    inc ecx
    cmp ecx, 8
    jb 3b

    xor ecx, ecx
4:  mov eax, ecx
    shl eax, 12
    add eax, edi
    or eax, {pte_table}
    mov [edi + ecx * 8 + boot_pt_high], eax
    inc ecx
    cmp ecx, 4096
    jb 4b

    /* Unmap the boot stack's guard page. */
    mov eax, offset __boot_stack_guard_pte
    mov dword ptr [edi + eax + boot_pt_high], 0

    /* PAE, then the page-table root, then EFER.LME, then paging. */
    mov eax, cr4
    or eax, {cr4_pae}
    mov cr4, eax
    lea eax, [edi + boot_pml4]
    mov cr3, eax
    mov ecx, {msr_efer}
    rdmsr
    or eax, {efer_lme}
    wrmsr
    mov eax, cr0
    or eax, {cr0_pg_pe}
    mov cr0, eax

    /* The GDT pointer holds the GDT's address where it was loaded. */
    lea eax, [edi + boot_gdt]
    mov [edi + boot_gdt_ptr + 2], eax
    lgdt [edi + boot_gdt_ptr]
    /* A far return into 64-bit code where it was loaded. */
    push {sel_code}
    lea eax, [edi + long_mode_low]
    push eax
    retf

/* Print the NUL-terminated string at esi on COM1 (polled), then halt. */
.Lbad_magic:
    /* Not multiboot2, so not relocated by it: linked where it runs. */
    xor edi, edi
    lea esi, [edi + msg_bad_magic]
    jmp .Lfatal32
.Lno_cpuid:
    lea esi, [edi + msg_no_cpuid]
    jmp .Lfatal32
.Lno_long_mode:
    lea esi, [edi + msg_no_long_mode]
.Lfatal32:
    /* 115200 8N1, FIFO on: the firmware may have left COM1 unconfigured. */
    mov dx, {com1} + 1
    xor al, al
    out dx, al
    mov dx, {com1} + 3
    mov al, {uart_lcr_dlab}
    out dx, al
    mov dx, {com1}
    mov al, 1
    out dx, al
    mov dx, {com1} + 1
    xor al, al
    out dx, al
    mov dx, {com1} + 3
    mov al, {uart_lcr_8n1}
    out dx, al
    mov dx, {com1} + 2
    mov al, {uart_fcr_enable}
    out dx, al
5:  mov al, [esi]
    test al, al
    jz 7f
    mov bl, al
    mov dx, {com1} + 5
    mov ecx, 100000                 /* bounded: there may be no UART at all */
6:  in al, dx
    test al, {uart_lsr_thr_empty}
    jnz 8f
    dec ecx
    jnz 6b
8:  mov dx, {com1}
    mov al, bl
    out dx, al
    inc esi
    jmp 5b
7:  cli
    hlt
    jmp 7b

.code64
long_mode_low:
    mov ax, {sel_data}
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    movabs rax, offset long_mode_high
    jmp rax

.section .text.kernel_entry, "ax"
long_mode_high:
    mov rsp, offset __boot_stack_top
    mov edx, edi                    /* the load offset */
    mov edi, esi                    /* the boot information's physical address */
    mov eax, ebx                    /* the TSC at entry, from ebx:ebp */
    shl rax, 32
    mov esi, ebp
    or rsi, rax
    xor ebp, ebp
    call {kernel_main}
    ud2
