/*
 * AP start code. A STARTUP IPI starts an AP in real mode at CS:IP =
 * (page >> 4):0, so this blob is position independent: in real mode it
 * addresses its page through DS = CS, and from protected mode on through
 * ebx = the page's linear address. The BSP fills in the parameter block at
 * {params} (lib.rs: Params) before sending the IPIs.
 *
 * Handshake (state words in Params.cpus[i].state):
 *   every AP first counts itself in `entered`, then finds its APIC ID in
 *   the table; an AP not in it counts itself in `parked` and halts for
 *   good. A listed AP writes REAL, PROTECTED and LONG as it passes each
 *   mode, so the BSP can tell a CPU that never ran this code ("not
 *   responding") from one that got stuck on the way ("stuck"). Rust
 *   (ap_entry) writes ONLINE.
 * No stack is used before long mode, so any number of APs can run this
 * at once.
 */
.pushsection .trampoline, "a"
.code16
.global trampoline_start
trampoline_start:
    cli
    cld
    mov ax, cs
    mov ds, ax
    lock inc dword ptr [{p_entered}]

    /* Our APIC ID into edx: CPUID leaf 0Bh (x2APIC ID, 32 bits) where it
     * exists, else leaf 01h EBX[31:24]. */
    xor eax, eax
    cpuid
    cmp eax, 0x0b
    jb 1f
    mov eax, 0x0b
    xor ecx, ecx
    cpuid
    test ebx, ebx
    jnz 2f
1:  mov eax, 1
    cpuid
    shr ebx, 24
    mov edx, ebx

    /* esi = our index in the table. */
2:  xor esi, esi
    mov ecx, dword ptr [{p_cpu_count}]
3:  cmp esi, ecx
    jae .Lpark
    cmp edx, dword ptr [{p_cpus} + esi * 8]
    je 4f
    inc esi
    jmp 3b
4:  mov dword ptr [{p_cpus} + 4 + esi * 8], {state_real}

    /* ebx = the page's linear address, for protected and long mode. */
    xor ebx, ebx
    mov bx, cs
    shl ebx, 4

    lgdt [{p_gdtr}]
    mov eax, cr0
    or eax, {cr0_pe}
    mov cr0, eax
    /* jmp far dword [p_pm32_jump]: LLVM assembles the mnemonic in 16-bit
     * mode as a near jump, so spell it out. */
    .byte 0x66, 0xff, 0x2e
    .short {p_pm32_jump}

.Lpark:
    lock inc dword ptr [{p_parked}]
5:  cli
    hlt
    jmp 5b

.code32
.global trampoline_pm32
trampoline_pm32:
    mov ax, {sel_data}
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov dword ptr [ebx + {p_cpus} + 4 + esi * 8], {state_protected}
    mov eax, dword ptr [ebx + {p_cr4}]
    mov cr4, eax
    mov eax, dword ptr [ebx + {p_cr3}]
    mov cr3, eax
    mov ecx, {msr_efer}
    rdmsr
    or eax, dword ptr [ebx + {p_efer}]
    wrmsr
    mov eax, cr0
    or eax, {cr0_pg_wp}
    mov cr0, eax
    jmp fword ptr [ebx + {p_lm64_jump}]

.code64
.global trampoline_lm64
trampoline_lm64:
    /* Upper halves are undefined after the switch: zero-extend. */
    mov ebx, ebx
    mov esi, esi
    mov dword ptr [rbx + {p_cpus} + 4 + rsi * 8], {state_long}
    mov rax, qword ptr [rbx + {p_stacks}]
    mov rsp, qword ptr [rax + rsi * 8]
    xor ebp, ebp
    mov rdi, rsi
    mov rax, qword ptr [rbx + {p_entry}]
    call rax
    ud2

    /* The code must end before the parameter block: the assembler
     * refuses to move .org backwards. */
    .org {params}
.global trampoline_end
trampoline_end:
.popsection
