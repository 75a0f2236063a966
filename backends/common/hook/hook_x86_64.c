/* x86_64: decode a prologue with Capstone, relocate it into a trampoline, and
 * write patches without torn instructions.
 *
 * Patches.
 *   near (VS_HOOK_KIND_X86_REL32): `E9 rel32` (5 bytes) to a relay in a slot
 *        within +-2 GiB of the target; the relay is `jmp [rip+0]; .quad
 *        replacement`. Preferred: the fewest bytes overwritten.
 *   far  (VS_HOOK_KIND_X86_ABS64): `FF 25 00000000; .quad replacement`
 *        (14 bytes) written over the target itself, when no memory is free
 *        within reach (hook_mem.c) or the near plan was refused.
 *
 * Note [Relocating a prologue]
 * ----------------------------
 * The window is the run of whole instructions from the target that covers the
 * patch (5 or 14 bytes). Each is copied to the trampoline, rewritten when its
 * meaning depends on where it sits:
 *   - jmp/call rel: absolute forms `jmp [rip+0]; .quad dest` and
 *     `call [rip+2]; jmp +8; .quad dest` (the return address is then in the
 *     trampoline, which lives forever);
 *   - jcc and loop/jrcxz rel8/rel32: the same condition over a 2-byte hop:
 *     `jcc +2; jmp +14; jmp [rip+0]; .quad dest`;
 *   - a RIP-relative memory operand: its disp32 is recomputed for the new
 *     address when the data is still within +-2 GiB of the trampoline (the
 *     near case, normally); otherwise `mov r32/r64, [rip+x]` becomes
 *     `movabs r64, addr; mov r, [r]` and `lea r64, [rip+x]` becomes
 *     `movabs r64, addr`; any other far RIP-relative form is refused.
 * The trampoline ends with an absolute jump to target + window, unless the
 * window ends with an unconditional jump or return.
 *
 * Refused, with VS_ERR_NOT_SUPPORTED and the offending instruction in `why`:
 *   - bytes Capstone cannot decode, and int3 (a debugger's breakpoint);
 *   - a function shorter than the patch: a ret/jmp/ud2/hlt that ends before
 *     the patch does (the bytes after it may be another function);
 *   - a branch inside the window back into the window (it would run our patch);
 *   - a branch found by scanning the SCAN_AHEAD bytes after the window that
 *     lands strictly inside the window (mid-patch), or a conditional branch or
 *     loop to the entry itself (a loop whose head is the entry would re-enter
 *     the replacement); jmp/call to the entry are calls of the function and go
 *     through the hook as they should. This scan is a heuristic: indirect
 *     jumps (jump tables) and code further away are not seen;
 *   - a memory operand (other than lea) that reads or writes the window;
 *   - xbegin and other relative branches we do not rewrite, and far
 *     RIP-relative forms other than the mov/lea above.
 */
#include <stdio.h>
#include <string.h>

#include <capstone/capstone.h>

#include "hook_internal.h"

#define REL32_PATCH 5      /* bytes of `jmp rel32` */
#define ABS64_PATCH 14     /* bytes of `jmp [rip+0]; .quad` */
#define RELAY_SPAN 16      /* bytes reserved for the relay at the start of a near slot */
#define MAX_INSN 15        /* longest x86 instruction */
#define SCAN_AHEAD 256     /* bytes after the window searched for branches into it */
#define DESC_LEN 200      /* `mnemonic op_str` (Capstone: 32 + 160 bytes) */
#define NEAR_REACH 0x7fff0000ull /* a near slot lies within this many bytes of the target */

typedef struct emitter {
    uint8_t *buf; /* plan->code */
    size_t len;   /* bytes emitted */
    size_t cap;   /* capacity of buf */
    int overflow; /* set when an emit did not fit */
} emitter;

static void put(emitter *em, const void *bytes, size_t n)
{
    if (em->overflow || em->cap - em->len < n) {
        em->overflow = 1;
        return;
    }
    memcpy(em->buf + em->len, bytes, n);
    em->len += n;
}

static void put_u8(emitter *em, uint8_t b)
{
    put(em, &b, 1);
}

static void put_le(emitter *em, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(em, b, n);
}

/* jmp [rip+0]; .quad dest  (14 bytes) */
static void emit_abs_jmp(emitter *em, uint64_t dest)
{
    static const uint8_t op[6] = {0xFF, 0x25, 0, 0, 0, 0};
    put(em, op, sizeof op);
    put_le(em, dest, 8);
}

/* call [rip+2]; jmp +8; .quad dest  (16 bytes) */
static void emit_abs_call(emitter *em, uint64_t dest)
{
    static const uint8_t op[8] = {0xFF, 0x15, 2, 0, 0, 0, 0xEB, 0x08};
    put(em, op, sizeof op);
    put_le(em, dest, 8);
}

typedef enum branch_kind { BR_NONE, BR_JMP, BR_CALL, BR_JCC, BR_LOOP, BR_OTHER } branch_kind;

typedef struct jcc_code {
    unsigned id; /* x86_insn */
    uint8_t cc;  /* condition code: short form is 0x70 + cc */
} jcc_code;

static const jcc_code k_jcc[] = {
    {X86_INS_JO, 0x0},  {X86_INS_JNO, 0x1}, {X86_INS_JB, 0x2},  {X86_INS_JAE, 0x3},
    {X86_INS_JE, 0x4},  {X86_INS_JNE, 0x5}, {X86_INS_JBE, 0x6}, {X86_INS_JA, 0x7},
    {X86_INS_JS, 0x8},  {X86_INS_JNS, 0x9}, {X86_INS_JP, 0xA},  {X86_INS_JNP, 0xB},
    {X86_INS_JL, 0xC},  {X86_INS_JGE, 0xD}, {X86_INS_JLE, 0xE}, {X86_INS_JG, 0xF},
};

static int has_imm_target(const cs_insn *in)
{
    const cs_x86 *x = &in->detail->x86;
    return x->op_count >= 1 && x->operands[0].type == X86_OP_IMM;
}

static branch_kind classify_branch(csh cs, const cs_insn *in, uint8_t *cc)
{
    switch (in->id) {
    case X86_INS_JMP:
        return has_imm_target(in) ? BR_JMP : BR_NONE;
    case X86_INS_CALL:
        return has_imm_target(in) ? BR_CALL : BR_NONE;
    case X86_INS_LOOP:
    case X86_INS_LOOPE:
    case X86_INS_LOOPNE:
    case X86_INS_JRCXZ:
    case X86_INS_JECXZ:
    case X86_INS_JCXZ:
        return BR_LOOP;
    case X86_INS_XBEGIN:
        return BR_OTHER;
    default:
        break;
    }
    for (size_t i = 0; i < sizeof k_jcc / sizeof k_jcc[0]; i++) {
        if (k_jcc[i].id == in->id) {
            *cc = k_jcc[i].cc;
            return BR_JCC;
        }
    }
    return cs_insn_group(cs, in, X86_GRP_BRANCH_RELATIVE) ? BR_OTHER : BR_NONE;
}

/* Control does not continue to the next instruction. */
static int is_terminator(csh cs, const cs_insn *in)
{
    switch (in->id) {
    case X86_INS_JMP:
    case X86_INS_LJMP:
    case X86_INS_UD2:
    case X86_INS_HLT:
        return 1;
    default:
        return cs_insn_group(cs, in, X86_GRP_RET) || cs_insn_group(cs, in, X86_GRP_IRET);
    }
}

/* Index of the RIP-relative memory operand, or -1. */
static int rip_operand(const cs_insn *in)
{
    const cs_x86 *x = &in->detail->x86;
    for (int i = 0; i < x->op_count; i++)
        if (x->operands[i].type == X86_OP_MEM && x->operands[i].mem.base == X86_REG_RIP)
            return i;
    return -1;
}

/* General-purpose register number 0..15 and width (4 or 8 bytes), or -1. */
static int gpr_number(x86_reg r, int *width)
{
    static const x86_reg r64[16] = {X86_REG_RAX, X86_REG_RCX, X86_REG_RDX, X86_REG_RBX,
                                    X86_REG_RSP, X86_REG_RBP, X86_REG_RSI, X86_REG_RDI,
                                    X86_REG_R8,  X86_REG_R9,  X86_REG_R10, X86_REG_R11,
                                    X86_REG_R12, X86_REG_R13, X86_REG_R14, X86_REG_R15};
    static const x86_reg r32[16] = {X86_REG_EAX, X86_REG_ECX, X86_REG_EDX, X86_REG_EBX,
                                    X86_REG_ESP, X86_REG_EBP, X86_REG_ESI, X86_REG_EDI,
                                    X86_REG_R8D, X86_REG_R9D, X86_REG_R10D, X86_REG_R11D,
                                    X86_REG_R12D, X86_REG_R13D, X86_REG_R14D, X86_REG_R15D};
    for (int i = 0; i < 16; i++) {
        if (r64[i] == r) {
            *width = 8;
            return i;
        }
        if (r32[i] == r) {
            *width = 4;
            return i;
        }
    }
    return -1;
}

/* movabs r64, imm64 */
static void emit_movabs(emitter *em, int reg, uint64_t imm)
{
    put_u8(em, (uint8_t)(0x48 | (reg >= 8 ? 0x01 : 0)));
    put_u8(em, (uint8_t)(0xB8 + (reg & 7)));
    put_le(em, imm, 8);
}

/* mov r32/r64, [r64] with the same register as address and destination. */
static void emit_load_through(emitter *em, int reg, int width)
{
    uint8_t rex = (uint8_t)((width == 8 ? 0x48 : 0x40) | (reg >= 8 ? 0x05 : 0)); /* W, R, B */
    if (rex != 0x40)
        put_u8(em, rex);
    put_u8(em, 0x8B);
    int low = reg & 7;
    if (low == 4) { /* rsp/r12 as base needs a SIB byte */
        put_u8(em, (uint8_t)(0x00 | (low << 3) | 4));
        put_u8(em, 0x24);
    } else if (low == 5) { /* rbp/r13 with mod=00 would mean RIP-relative: use disp8 = 0 */
        put_u8(em, (uint8_t)(0x40 | (low << 3) | 5));
        put_u8(em, 0x00);
    } else {
        put_u8(em, (uint8_t)((low << 3) | low));
    }
}

/* A far RIP-relative operand, rewritten through an absolute address; 0 if we cannot. */
static int emit_far_rip(const cs_insn *in, int op, uint64_t abs, emitter *em)
{
    const cs_x86 *x = &in->detail->x86;
    if (op != 1 || x->op_count != 2 || x->operands[0].type != X86_OP_REG)
        return 0;
    if (x->prefix[0] || x->prefix[1] || x->prefix[2] || x->prefix[3])
        return 0;
    int width = 0;
    int reg = gpr_number(x->operands[0].reg, &width);
    if (reg < 0)
        return 0;
    if (in->id == X86_INS_LEA && width == 8) {
        emit_movabs(em, reg, abs);
        return 1;
    }
    if (in->id == X86_INS_MOV) {
        emit_movabs(em, reg, abs);
        emit_load_through(em, reg, width);
        return 1;
    }
    return 0;
}

typedef struct decoder {
    csh cs;
    cs_insn *in;
    const uint8_t *target;
    size_t readable; /* bytes that may be read from target on */
} decoder;

static int decode_at(decoder *d, size_t off)
{
    if (off >= d->readable)
        return 0;
    const uint8_t *code = d->target + off;
    size_t size = d->readable - off < MAX_INSN ? d->readable - off : MAX_INSN;
    uint64_t addr = (uint64_t)(uintptr_t)code;
    return cs_disasm_iter(d->cs, &code, &size, &addr, d->in);
}

static void describe(const cs_insn *in, char *buf, size_t len)
{
    snprintf(buf, len, "`%s%s%s`", in->mnemonic, in->op_str[0] ? " " : "", in->op_str);
}

/* Pass 1: the window of whole instructions covering patch_len bytes. */
static vs_status find_window(decoder *d, size_t patch_len, size_t *window, int *ends_flow, char *why,
                             size_t why_len)
{
    size_t off = 0;
    char text[DESC_LEN];
    while (off < patch_len) {
        if (!decode_at(d, off)) {
            if (off >= d->readable)
                vs_hook_set_why(why, why_len, "the code mapping ends %zu bytes into the function", off);
            else
                vs_hook_set_why(why, why_len, "cannot decode the instruction at +%zu (byte %02x)", off,
                                d->target[off]);
            return VS_ERR_NOT_SUPPORTED;
        }
        describe(d->in, text, sizeof text);
        if (d->in->id == X86_INS_INT3) {
            vs_hook_set_why(why, why_len, "int3 at +%zu (a debugger breakpoint?)", off);
            return VS_ERR_NOT_SUPPORTED;
        }
        *ends_flow = is_terminator(d->cs, d->in);
        off += d->in->size;
        if (*ends_flow && off < patch_len) {
            vs_hook_set_why(why, why_len,
                            "the function is shorter than the %zu-byte patch: %s at +%zu ends it",
                            patch_len, text, off - d->in->size);
            return VS_ERR_NOT_SUPPORTED;
        }
    }
    *window = off;
    return VS_OK;
}

/* Pass 2: relocate one instruction of the window to em (at address `at`). */
static vs_status relocate_one(decoder *d, size_t off, size_t window, uint64_t at, emitter *em, char *why,
                              size_t why_len)
{
    const cs_insn *in = d->in;
    uint64_t start = (uint64_t)(uintptr_t)d->target;
    char text[DESC_LEN];
    describe(in, text, sizeof text);
    uint8_t cc = 0;
    branch_kind br = classify_branch(d->cs, in, &cc);
    if (br == BR_OTHER) {
        vs_hook_set_why(why, why_len, "cannot relocate the relative branch %s at +%zu", text, off);
        return VS_ERR_NOT_SUPPORTED;
    }
    if (br != BR_NONE) {
        uint64_t dest = (uint64_t)in->detail->x86.operands[0].imm;
        if (dest >= start && dest < start + window) {
            vs_hook_set_why(why, why_len, "%s at +%zu branches back into the patched bytes (+%llu)",
                            text, off, (unsigned long long)(dest - start));
            return VS_ERR_NOT_SUPPORTED;
        }
        static const uint8_t hop[2] = {0xEB, 0x0E}; /* jmp +14: over the absolute jump */
        switch (br) {
        case BR_JMP:
            emit_abs_jmp(em, dest);
            break;
        case BR_CALL:
            emit_abs_call(em, dest);
            break;
        case BR_JCC:
            put_u8(em, (uint8_t)(0x70 + cc));
            put_u8(em, 0x02);
            put(em, hop, 2);
            emit_abs_jmp(em, dest);
            break;
        default: /* BR_LOOP: same opcode and prefixes, rel8 = 2 */
            put(em, in->bytes, (size_t)in->size - 1);
            put_u8(em, 0x02);
            put(em, hop, 2);
            emit_abs_jmp(em, dest);
            break;
        }
        return VS_OK;
    }
    int op = rip_operand(in);
    if (op < 0) {
        put(em, in->bytes, in->size);
        return VS_OK;
    }
    const cs_x86 *x = &in->detail->x86;
    uint64_t abs = in->address + in->size + (uint64_t)x->operands[op].mem.disp;
    if (in->id != X86_INS_LEA && abs >= start && abs < start + window) {
        vs_hook_set_why(why, why_len, "%s at +%zu accesses the patched bytes", text, off);
        return VS_ERR_NOT_SUPPORTED;
    }
    size_t doff = x->encoding.disp_offset;
    int32_t old_disp = 0;
    int disp_found = doff != 0 && x->encoding.disp_size == 4 && doff + 4 <= in->size;
    if (disp_found) {
        memcpy(&old_disp, in->bytes + doff, 4);
        disp_found = (int64_t)old_disp == x->operands[op].mem.disp;
    }
    if (!disp_found) {
        vs_hook_set_why(why, why_len, "cannot locate the displacement of %s at +%zu", text, off);
        return VS_ERR_NOT_SUPPORTED;
    }
    int64_t new_disp = (int64_t)(abs - (at + in->size));
    if (new_disp >= INT32_MIN && new_disp <= INT32_MAX) {
        uint8_t copy[16];
        int32_t d32 = (int32_t)new_disp;
        memcpy(copy, in->bytes, in->size);
        memcpy(copy + doff, &d32, 4);
        put(em, copy, in->size);
        return VS_OK;
    }
    if (emit_far_rip(in, op, abs, em))
        return VS_OK;
    vs_hook_set_why(why, why_len,
                    "the RIP-relative operand of %s at +%zu is out of reach of a trampoline with no "
                    "free memory within 2 GiB (only mov/lea to a register can be rewritten)",
                    text, off);
    return VS_ERR_NOT_SUPPORTED;
}

/* Pass 3: later code must not branch into the middle of the window. */
static vs_status scan_ahead(decoder *d, size_t window, char *why, size_t why_len)
{
    uint64_t start = (uint64_t)(uintptr_t)d->target;
    size_t end = d->readable < window + SCAN_AHEAD ? d->readable : window + SCAN_AHEAD;
    for (size_t off = window; off < end && decode_at(d, off); off += d->in->size) {
        uint8_t cc;
        branch_kind br = classify_branch(d->cs, d->in, &cc);
        if (br == BR_NONE || !has_imm_target(d->in))
            continue;
        uint64_t dest = (uint64_t)d->in->detail->x86.operands[0].imm;
        int inside = dest > start && dest < start + window;
        int loops_to_entry = dest == start && (br == BR_JCC || br == BR_LOOP);
        if (inside || loops_to_entry) {
            char text[DESC_LEN];
            describe(d->in, text, sizeof text);
            vs_hook_set_why(why, why_len, "%s at +%zu branches back into the %zu patched bytes (+%llu)",
                            text, off, window, (unsigned long long)(dest - start));
            return VS_ERR_NOT_SUPPORTED;
        }
    }
    return VS_OK;
}

int vs_hook_arch_near_range(uintptr_t target, uintptr_t *lo, uintptr_t *hi)
{
    *lo = target > NEAR_REACH ? target - NEAR_REACH : 0;
    *hi = UINTPTR_MAX - target > NEAR_REACH ? target + NEAR_REACH : UINTPTR_MAX;
    return 1;
}

static vs_status plan_with(decoder *d, const void *replacement, const uint8_t *slot, int near,
                           vs_hook_plan *plan, char *why, size_t why_len)
{
    size_t patch_len = near ? REL32_PATCH : ABS64_PATCH;
    size_t window = 0;
    int ends_flow = 0;
    vs_status st = find_window(d, patch_len, &window, &ends_flow, why, why_len);
    if (st != VS_OK)
        return st;
    st = scan_ahead(d, window, why, why_len);
    if (st != VS_OK)
        return st;

    emitter em = {plan->code, 0, sizeof plan->code, 0};
    uint64_t base = (uint64_t)(uintptr_t)slot;
    uint64_t start = (uint64_t)(uintptr_t)d->target;
    if (near) { /* relay first */
        emit_abs_jmp(&em, (uint64_t)(uintptr_t)replacement);
        while (em.len < RELAY_SPAN)
            put_u8(&em, 0xCC);
    }
    plan->tramp_offset = em.len;
    for (size_t off = 0; off < window; off += d->in->size) {
        if (!decode_at(d, off))
            return VS_ERR_INTERNAL; /* decoded fine in pass 1 */
        st = relocate_one(d, off, window, base + em.len, &em, why, why_len);
        if (st != VS_OK)
            return st;
    }
    if (!ends_flow)
        emit_abs_jmp(&em, start + window);
    if (em.overflow) {
        vs_hook_set_why(why, why_len, "the relocated prologue does not fit a %d-byte trampoline",
                        VS_HOOK_SLOT_SIZE);
        return VS_ERR_NOT_SUPPORTED;
    }

    emitter pe = {plan->patch, 0, sizeof plan->patch, 0};
    if (near) {
        int64_t rel = (int64_t)(base - (start + REL32_PATCH));
        if (rel < INT32_MIN || rel > INT32_MAX)
            return VS_ERR_INTERNAL; /* the slot was not in the near range */
        put_u8(&pe, 0xE9);
        put_le(&pe, (uint64_t)rel, 4);
    } else {
        emit_abs_jmp(&pe, (uint64_t)(uintptr_t)replacement);
    }
    plan->kind = near ? VS_HOOK_KIND_X86_REL32 : VS_HOOK_KIND_X86_ABS64;
    plan->patch_len = pe.len;
    plan->window_len = window;
    plan->code_len = em.len;
    return VS_OK;
}

vs_status vs_hook_arch_plan(const uint8_t *target, size_t readable, const void *replacement,
                            const uint8_t *slot, int near, vs_hook_plan *plan, char *why,
                            size_t why_len)
{
    if (!target || !replacement || !slot || !plan)
        return VS_ERR_INVALID_ARGUMENT;
    decoder d = {0, NULL, target, readable};
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &d.cs) != CS_ERR_OK) {
        vs_hook_set_why(why, why_len, "Capstone cannot open an x86_64 decoder");
        return VS_ERR_NOT_SUPPORTED;
    }
    vs_status st = VS_ERR_OUT_OF_MEMORY;
    cs_option(d.cs, CS_OPT_DETAIL, CS_OPT_ON);
    d.in = cs_malloc(d.cs);
    if (d.in) {
        memset(plan, 0, sizeof *plan);
        st = plan_with(&d, replacement, slot, near, plan, why, why_len);
        cs_free(d.in, 1);
    }
    cs_close(&d.cs);
    return st;
}

/* Stores the instruction fetch of another core sees whole: an aligned 8-byte
 * store, and a 2-byte store that does not straddle a 64-byte line. */
static void store8_aligned(uint8_t *p, uint64_t v)
{
    __asm__ volatile("movq %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

static void store2(uint8_t *p, uint16_t v)
{
    __asm__ volatile("movw %w1, (%0)" : : "r"(p), "r"(v) : "memory");
}

void vs_hook_arch_store_live(uint8_t *dst, const uint8_t *bytes, size_t len)
{
    /* Note [Patching live code] in hook_patch.c. */
    size_t lead = (uintptr_t)dst & 7;
    if (lead + len <= 8) {
        uint8_t *word = dst - lead;
        uint8_t merged[8];
        memcpy(merged, word, 8);
        memcpy(merged + lead, bytes, len);
        uint64_t v;
        memcpy(&v, merged, 8);
        store8_aligned(word, v);
        vs_hook_sync_cores();
        return;
    }
    store2(dst, 0xFEEB); /* EB FE: jmp . */
    vs_hook_sync_cores();
    memcpy(dst + 2, bytes + 2, len - 2);
    vs_hook_sync_cores();
    store2(dst, (uint16_t)(bytes[0] | (bytes[1] << 8)));
    vs_hook_sync_cores();
}

void vs_hook_arch_flush_icache(void *begin, size_t len)
{
    (void)begin; /* x86 keeps instruction fetch coherent with stores */
    (void)len;
}
