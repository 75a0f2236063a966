/* aarch64: relocate a prologue into a trampoline and write patches without
 * torn instructions.
 *
 * Patches.
 *   near (VS_HOOK_KIND_A64_B): one `b rel26` (4 bytes, +-128 MiB) to a relay
 *        `ldr x16, #8 ; br x16 ; .quad replacement` in a slot in reach.
 *        Preferred: a single aligned word is written atomically, and only one
 *        instruction is relocated, so no thread can be caught between two
 *        instructions of the window (Note [Patching live code], point 3).
 *   far  (VS_HOOK_KIND_A64_ABS): `ldr x16, #8 ; br x16 ; .quad replacement`
 *        (16 bytes) over the target, when no slot is free within reach.
 * x16 (IP0) may be clobbered at any function entry by the AAPCS64 (linker
 * veneers do it), so using it there changes nothing for the caller.
 *
 * Note [Relocating a prologue] (aarch64)
 * --------------------------------------
 * The window is the first instruction (near) or the first four (far). Every
 * instruction is one 32-bit word, so the PC-relative ones are recognized by
 * their encodings (exact), and Capstone is asked only whether each word is a
 * valid instruction and which registers it names. Rewrites, with the target
 * address computed from the original PC:
 *   ADR/ADRP Xd         -> ldr Xd, #8 ; b #12 ; .quad addr
 *   LDR Wt/Xt/LDRSW lit -> ldr Xt, #12 ; ldr{sw} Wt/Xt, [Xt] ; b #12 ; .quad addr
 *   LDR St/Dt/Qt lit    -> the same through x17 (IP1)
 *   PRFM lit            -> dropped (a hint)
 *   B                   -> ldr x16, #8 ; br x16 ; .quad dest
 *   BL                  -> ldr x16, #12 ; blr x16 ; b #12 ; .quad dest
 *   B.cond/CBZ/CBNZ/TBZ/TBNZ -> the same test hopping +8 to an absolute jump:
 *                          bcond #8 ; b #20 ; ldr x16, #8 ; br x16 ; .quad dest
 * The trampoline ends with `ldr x16, #8 ; br x16 ; .quad target+16` unless the
 * window ends with b/br/ret. Quads are 8-byte aligned (a nop is inserted).
 *
 * Refused (VS_ERR_NOT_SUPPORTED): a word Capstone cannot decode; a window that
 * names x16 or x17 (the trampoline's jump back and the SIMD literal rewrite
 * clobber them mid-function); a return or unconditional branch before the
 * last instruction of the window (function shorter than the patch); a branch or literal
 * inside the window that targets the window; a branch in the SCAN_AHEAD bytes
 * after the window that lands strictly inside it, or a conditional one that
 * targets the entry (same heuristic as x86_64); BC.cond and other PC-relative
 * forms not listed.
 */
#include <stdio.h>
#include <string.h>

#include <capstone/capstone.h>

#include "hook_internal.h"

#define ABS_PATCH 16      /* bytes of ldr/br/.quad */
#define NEAR_PATCH 4      /* bytes of b rel26 */
#define RELAY_SPAN 16     /* bytes of the relay at the start of a near slot */
#define NEAR_REACH 0x7ff0000ull /* a near slot lies within this many bytes (b: +-128 MiB) */
#define SCAN_AHEAD 256    /* bytes after the window searched for branches into it */
#define REG_IP0 16        /* x16 */
#define REG_IP1 17        /* x17 */
#define A64_NOP 0xD503201Fu
#define A64_B_SELF 0x14000000u /* b . */

typedef struct emitter {
    uint8_t *buf;   /* plan->code */
    size_t len;     /* bytes emitted */
    size_t cap;     /* capacity of buf */
    uint64_t base;  /* address buf will live at */
    int overflow;   /* set when an emit did not fit */
} emitter;

static void put32(emitter *em, uint32_t w)
{
    if (em->overflow || em->cap - em->len < 4) {
        em->overflow = 1;
        return;
    }
    memcpy(em->buf + em->len, &w, 4);
    em->len += 4;
}

static void put64(emitter *em, uint64_t v)
{
    put32(em, (uint32_t)v);
    put32(em, (uint32_t)(v >> 32));
}

/* Pad with nops so that the quad following `words` more instructions is 8-aligned. */
static void align_quad(emitter *em, size_t words)
{
    if ((em->base + em->len + 4 * words) & 7)
        put32(em, A64_NOP);
}

static uint32_t ldr_lit_x(unsigned rt, unsigned words_ahead)
{
    return 0x58000000u | (words_ahead << 5) | rt;
}

static uint32_t b_words(unsigned words)
{
    return 0x14000000u | (words & 0x3FFFFFFu);
}

/* ldr x16, #8 ; br x16 ; .quad dest */
static void emit_abs_jump(emitter *em, uint64_t dest)
{
    align_quad(em, 2);
    put32(em, ldr_lit_x(REG_IP0, 2));
    put32(em, 0xD61F0000u | (REG_IP0 << 5));
    put64(em, dest);
}

static int64_t sext(uint64_t v, unsigned bits)
{
    uint64_t m = 1ull << (bits - 1);
    return (int64_t)((v ^ m) - m);
}

typedef enum a64_class {
    A64_PLAIN,    /* position-independent */
    A64_ADR,
    A64_ADRP,
    A64_LDR_LIT,  /* GPR, SIMD&FP or PRFM literal */
    A64_B,
    A64_BL,
    A64_BCOND,    /* B.cond, CBZ/CBNZ, TBZ/TBNZ */
    A64_OTHER_PC, /* PC-relative, not handled */
} a64_class;

/* Class of a word and, for PC-relative ones, the address it refers to. */
static a64_class classify(uint32_t w, uint64_t pc, uint64_t *dest)
{
    if ((w & 0x9F000000u) == 0x10000000u || (w & 0x9F000000u) == 0x90000000u) {
        uint64_t imm = ((uint64_t)((w >> 5) & 0x7FFFF) << 2) | ((w >> 29) & 3);
        if (w & 0x80000000u) {
            *dest = (pc & ~(uint64_t)0xFFF) + (uint64_t)(sext(imm, 21) * 4096);
            return A64_ADRP;
        }
        *dest = pc + (uint64_t)sext(imm, 21);
        return A64_ADR;
    }
    if ((w & 0x3B000000u) == 0x18000000u) {
        *dest = pc + (uint64_t)(sext((w >> 5) & 0x7FFFF, 19) * 4);
        return A64_LDR_LIT;
    }
    if ((w & 0x7C000000u) == 0x14000000u) {
        *dest = pc + (uint64_t)(sext(w & 0x3FFFFFF, 26) * 4);
        return (w & 0x80000000u) ? A64_BL : A64_B;
    }
    if ((w & 0xFF000010u) == 0x54000000u || (w & 0x7E000000u) == 0x34000000u) {
        *dest = pc + (uint64_t)(sext((w >> 5) & 0x7FFFF, 19) * 4);
        return A64_BCOND;
    }
    if ((w & 0x7E000000u) == 0x36000000u) {
        *dest = pc + (uint64_t)(sext((w >> 5) & 0x3FFF, 14) * 4);
        return A64_BCOND;
    }
    if ((w & 0xFF000010u) == 0x54000010u) /* BC.cond (FEAT_HBC) */
        return A64_OTHER_PC;
    return A64_PLAIN;
}

/* Control does not continue to the next word: b, br, ret(aa/ab), brk, hlt, udf. */
static int ends_flow(uint32_t w)
{
    return (w & 0xFC000000u) == 0x14000000u || (w & 0xFFFFFC1Fu) == 0xD61F0000u ||
           (w & 0xFFFFFC1Fu) == 0xD65F0000u || w == 0xD65F0BFFu || w == 0xD65F0FFFu ||
           (w & 0xFFE0001Fu) == 0xD4200000u || (w & 0xFFE0001Fu) == 0xD4400000u ||
           (w & 0xFFFF0000u) == 0x00000000u;
}

static int is_ip_reg(arm64_reg r)
{
    return r == ARM64_REG_X16 || r == ARM64_REG_X17 || r == ARM64_REG_W16 || r == ARM64_REG_W17;
}

static int names_ip_regs(const cs_insn *in)
{
    const cs_arm64 *a = &in->detail->arm64;
    for (int i = 0; i < a->op_count; i++) {
        const cs_arm64_op *op = &a->operands[i];
        if (op->type == ARM64_OP_REG && is_ip_reg(op->reg))
            return 1;
        if (op->type == ARM64_OP_MEM && (is_ip_reg(op->mem.base) || is_ip_reg(op->mem.index)))
            return 1;
    }
    return 0;
}

/* Relocate one word of the window (at pc in the original) into em. */
static vs_status relocate_one(uint32_t w, uint64_t pc, size_t off, uint64_t start, size_t window,
                              emitter *em, char *why, size_t why_len)
{
    uint64_t dest = 0;
    a64_class c = classify(w, pc, &dest);
    unsigned rt = w & 0x1F;
    if (c == A64_OTHER_PC) {
        vs_hook_set_why(why, why_len, "cannot relocate the PC-relative word %08x at +%zu", w, off);
        return VS_ERR_NOT_SUPPORTED;
    }
    if (c != A64_PLAIN && c != A64_ADR && c != A64_ADRP && dest >= start && dest < start + window) {
        vs_hook_set_why(why, why_len, "the word %08x at +%zu refers back into the patched bytes (+%llu)",
                        w, off, (unsigned long long)(dest - start));
        return VS_ERR_NOT_SUPPORTED;
    }
    switch (c) {
    case A64_PLAIN:
        put32(em, w);
        break;
    case A64_ADR:
    case A64_ADRP:
        align_quad(em, 2);
        put32(em, ldr_lit_x(rt, 2));
        put32(em, b_words(3));
        put64(em, dest);
        break;
    case A64_LDR_LIT: {
        unsigned opc = w >> 30, simd = (w >> 26) & 1;
        uint32_t load;
        unsigned addr_reg = simd ? REG_IP1 : rt;
        if (!simd && opc == 3)
            break; /* PRFM: a hint, dropped */
        if (simd)
            load = opc == 0 ? 0xBD400000u : opc == 1 ? 0xFD400000u : 0x3DC00000u; /* ldr s/d/q */
        else
            load = opc == 0 ? 0xB9400000u : opc == 1 ? 0xF9400000u : 0xB9800000u; /* ldr w/x, ldrsw */
        if (simd && opc == 3) {
            vs_hook_set_why(why, why_len, "unallocated literal load %08x at +%zu", w, off);
            return VS_ERR_NOT_SUPPORTED;
        }
        align_quad(em, 3);
        put32(em, ldr_lit_x(addr_reg, 3));
        put32(em, load | (addr_reg << 5) | rt);
        put32(em, b_words(3));
        put64(em, dest);
        break;
    }
    case A64_B:
        emit_abs_jump(em, dest);
        break;
    case A64_BL:
        align_quad(em, 3);
        put32(em, ldr_lit_x(REG_IP0, 3));
        put32(em, 0xD63F0000u | (REG_IP0 << 5)); /* blr x16 */
        put32(em, b_words(3));
        put64(em, dest);
        break;
    case A64_BCOND: {
        uint32_t hop; /* the same test with offset +8 (two words) */
        if ((w & 0x7E000000u) == 0x36000000u)
            hop = (w & ~(0x3FFFu << 5)) | (2u << 5);
        else
            hop = (w & ~(0x7FFFFu << 5)) | (2u << 5);
        /* hop ; b over ; [nop] ldr x16 ; br x16 ; .quad */
        size_t pad = ((em->base + em->len + 16) & 7) ? 1 : 0;
        put32(em, hop);
        put32(em, b_words((unsigned)(5 + pad)));
        emit_abs_jump(em, dest);
        break;
    }
    default:
        return VS_ERR_INTERNAL;
    }
    return VS_OK;
}

/* Later code must not branch into the middle of the window. */
static vs_status scan_ahead(const uint8_t *target, size_t readable, size_t window, char *why,
                            size_t why_len)
{
    uint64_t start = (uint64_t)(uintptr_t)target;
    size_t end = readable < window + SCAN_AHEAD ? readable : window + SCAN_AHEAD;
    for (size_t off = window; off + 4 <= end; off += 4) {
        uint32_t w;
        memcpy(&w, target + off, 4);
        uint64_t dest = 0;
        a64_class c = classify(w, start + off, &dest);
        if (c != A64_B && c != A64_BL && c != A64_BCOND)
            continue;
        if ((dest > start && dest < start + window) || (dest == start && c == A64_BCOND)) {
            vs_hook_set_why(why, why_len, "the branch %08x at +%zu branches back into the %zu patched bytes",
                            w, off, window);
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

static vs_status check_window(csh cs, cs_insn *in, const uint8_t *target, size_t window, int *last_ends,
                              char *why, size_t why_len)
{
    for (size_t i = 0; i < window / 4; i++) {
        const uint8_t *code = target + 4 * i;
        size_t size = 4;
        uint64_t addr = (uint64_t)(uintptr_t)code;
        uint32_t w;
        memcpy(&w, code, 4);
        if (!cs_disasm_iter(cs, &code, &size, &addr, in)) {
            vs_hook_set_why(why, why_len, "cannot decode the word %08x at +%zu", w, 4 * i);
            return VS_ERR_NOT_SUPPORTED;
        }
        if (names_ip_regs(in)) {
            vs_hook_set_why(why, why_len, "`%s %s` at +%zu uses x16/x17, which the trampoline needs",
                            in->mnemonic, in->op_str, 4 * i);
            return VS_ERR_NOT_SUPPORTED;
        }
        *last_ends = ends_flow(w);
        if (*last_ends && i + 1 < window / 4) {
            vs_hook_set_why(why, why_len,
                            "the function is shorter than the %zu-byte patch: `%s %s` at +%zu ends it",
                            window, in->mnemonic, in->op_str, 4 * i);
            return VS_ERR_NOT_SUPPORTED;
        }
    }
    return VS_OK;
}

vs_status vs_hook_arch_plan(const uint8_t *target, size_t readable, const void *replacement,
                            const uint8_t *slot, int near, vs_hook_plan *plan, char *why,
                            size_t why_len)
{
    if (!target || !replacement || !slot || !plan)
        return VS_ERR_INVALID_ARGUMENT;
    size_t window = near ? NEAR_PATCH : ABS_PATCH;
    if ((uintptr_t)target & 3) {
        vs_hook_set_why(why, why_len, "target %p is not 4-byte aligned", (const void *)target);
        return VS_ERR_INVALID_ARGUMENT;
    }
    if (readable < window) {
        vs_hook_set_why(why, why_len, "the code mapping ends %zu bytes into the function", readable);
        return VS_ERR_NOT_SUPPORTED;
    }
    csh cs;
    if (cs_open(CS_ARCH_ARM64, CS_MODE_ARM, &cs) != CS_ERR_OK) {
        vs_hook_set_why(why, why_len, "Capstone cannot open an aarch64 decoder");
        return VS_ERR_NOT_SUPPORTED;
    }
    cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
    cs_insn *in = cs_malloc(cs);
    int last_ends = 0;
    vs_status st = in ? check_window(cs, in, target, window, &last_ends, why, why_len) : VS_ERR_OUT_OF_MEMORY;
    if (in)
        cs_free(in, 1);
    cs_close(&cs);
    if (st == VS_OK)
        st = scan_ahead(target, readable, window, why, why_len);
    if (st != VS_OK)
        return st;

    memset(plan, 0, sizeof *plan);
    uint64_t start = (uint64_t)(uintptr_t)target;
    uint64_t base = (uint64_t)(uintptr_t)slot;
    emitter em = {plan->code, 0, sizeof plan->code, base, 0};
    if (near) { /* relay first */
        emit_abs_jump(&em, (uint64_t)(uintptr_t)replacement);
        while (em.len < RELAY_SPAN)
            put32(&em, 0xD4200000u); /* brk #0 */
    }
    plan->tramp_offset = em.len;
    for (size_t i = 0; i < window / 4; i++) {
        uint32_t w;
        memcpy(&w, target + 4 * i, 4);
        st = relocate_one(w, start + 4 * i, 4 * i, start, window, &em, why, why_len);
        if (st != VS_OK)
            return st;
    }
    if (!last_ends)
        emit_abs_jump(&em, start + window);
    if (em.overflow) {
        vs_hook_set_why(why, why_len, "the relocated prologue does not fit a %d-byte trampoline",
                        VS_HOOK_SLOT_SIZE);
        return VS_ERR_NOT_SUPPORTED;
    }
    emitter pe = {plan->patch, 0, sizeof plan->patch, start, 0};
    if (near) {
        int64_t rel = (int64_t)(base - start);
        if (rel < -(int64_t)0x8000000 || rel >= (int64_t)0x8000000)
            return VS_ERR_INTERNAL; /* the slot was not in the near range */
        put32(&pe, b_words((unsigned)((uint64_t)rel >> 2)));
    } else {
        put32(&pe, ldr_lit_x(REG_IP0, 2));
        put32(&pe, 0xD61F0000u | (REG_IP0 << 5));
        put64(&pe, (uint64_t)(uintptr_t)replacement);
    }
    plan->kind = near ? VS_HOOK_KIND_A64_B : VS_HOOK_KIND_A64_ABS;
    plan->patch_len = pe.len;
    plan->window_len = window;
    plan->code_len = em.len;
    return VS_OK;
}

void vs_hook_arch_store_live(uint8_t *dst, const uint8_t *bytes, size_t len)
{
    /* Note [Patching live code] in hook_patch.c: park entering threads on
     * `b .`, write the tail, then the first word. Words are 4-byte aligned. */
    uint32_t first;
    memcpy(&first, bytes, 4);
    if (len == 4) { /* one aligned word: atomic for instruction fetch */
        __atomic_store_n((uint32_t *)(void *)dst, first, __ATOMIC_RELEASE);
        vs_hook_arch_flush_icache(dst, 4);
        vs_hook_sync_cores();
        return;
    }
    __atomic_store_n((uint32_t *)(void *)dst, A64_B_SELF, __ATOMIC_RELEASE);
    vs_hook_arch_flush_icache(dst, 4);
    vs_hook_sync_cores();
    memcpy(dst + 4, bytes + 4, len - 4);
    vs_hook_arch_flush_icache(dst + 4, len - 4);
    vs_hook_sync_cores();
    __atomic_store_n((uint32_t *)(void *)dst, first, __ATOMIC_RELEASE);
    vs_hook_arch_flush_icache(dst, 4);
    vs_hook_sync_cores();
}

void vs_hook_arch_flush_icache(void *begin, size_t len)
{
    __builtin___clear_cache((char *)begin, (char *)begin + len);
}
