/* libFuzzer harness: the hook engine's prologue relocation (x86_64).
 *
 * The input is a function prologue (plus a byte choosing near/far slots). The
 * engine plans a patch (vs_hook_arch_plan) for a target and a slot at fixed
 * addresses; nothing is executed or patched. It must refuse what it cannot
 * move; when it accepts, the trampoline is checked against the original with
 * Capstone, instruction by instruction:
 *   - the window is whole instructions and covers the patch;
 *   - a position-independent instruction is copied byte for byte;
 *   - a RIP-relative operand kept in place addresses the same absolute byte;
 *   - jmp/call/jcc/loop rel are rewritten to the absolute forms documented in
 *     Note [Relocating a prologue] with the original destination (and, for a
 *     conditional, the same condition);
 *   - unless the window ends in jmp/ret, the trampoline then jumps back to
 *     target + window.
 * A far RIP-relative rewrite (movabs) ends the byte-level comparison (its
 * address is checked, the rest of the window is not). Any mismatch aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <capstone/capstone.h>

#include "fuzz.h"
#include "hook/hook_internal.h"

#define TARGET_LEN 64

static uint8_t target_buf[TARGET_LEN + 256] __attribute__((aligned(64)));
static uint8_t slot_buf[VS_HOOK_SLOT_SIZE] __attribute__((aligned(64)));

static void bad(const char *why, uint64_t a, uint64_t b)
{
    fprintf(stderr, "fuzz_hook: wrong trampoline: %s (0x%llx vs 0x%llx)\n", why, (unsigned long long)a,
            (unsigned long long)b);
    abort();
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int rip_operand(const cs_insn *in, int64_t *disp)
{
    const cs_x86 *x = &in->detail->x86;
    for (int i = 0; i < x->op_count; i++) {
        if (x->operands[i].type == X86_OP_MEM && x->operands[i].mem.base == X86_REG_RIP) {
            *disp = x->operands[i].mem.disp;
            return 1;
        }
    }
    return 0;
}

static int imm_target(const cs_insn *in, uint64_t *dest)
{
    const cs_x86 *x = &in->detail->x86;
    if (x->op_count >= 1 && x->operands[0].type == X86_OP_IMM) {
        *dest = (uint64_t)x->operands[0].imm;
        return 1;
    }
    return 0;
}

static int is_cond(csh cs, const cs_insn *in)
{
    switch (in->id) {
    case X86_INS_LOOP: /* not in Capstone's jump group */
    case X86_INS_LOOPE:
    case X86_INS_LOOPNE:
    case X86_INS_JRCXZ:
    case X86_INS_JECXZ:
    case X86_INS_JCXZ:
        return 1;
    default:
        return cs_insn_group(cs, in, CS_GRP_JUMP) && in->id != X86_INS_JMP;
    }
}

/* Check the slot's trampoline against the window of original instructions. */
static void verify(csh cs, const uint8_t *target, const vs_hook_plan *p)
{
    const uint8_t *tramp = slot_buf + p->tramp_offset;
    size_t tlen = p->code_len - p->tramp_offset, tpos = 0;
    cs_insn *in = cs_malloc(cs), *out = cs_malloc(cs);
    const uint8_t *code = target;
    size_t left = p->window_len;
    uint64_t addr = (uint64_t)(uintptr_t)target;
    int last_ends = 0;
    while (left) {
        if (!cs_disasm_iter(cs, &code, &left, &addr, in))
            bad("window is not whole instructions", addr, p->window_len);
        /* Control never falls through these: no jump back is needed after them. */
        last_ends = in->id == X86_INS_JMP || in->id == X86_INS_LJMP || in->id == X86_INS_UD2 ||
                    in->id == X86_INS_HLT || cs_insn_group(cs, in, X86_GRP_RET) ||
                    cs_insn_group(cs, in, X86_GRP_IRET);
        uint64_t tp = (uint64_t)(uintptr_t)(tramp + tpos);
        uint64_t dest = 0;
        int64_t disp = 0;
        int cond = is_cond(cs, in);
        if ((in->id == X86_INS_JMP || in->id == X86_INS_CALL || cond) && imm_target(in, &dest)) {
            if (in->id == X86_INS_JMP) {
                static const uint8_t op[6] = {0xFF, 0x25, 0, 0, 0, 0};
                if (tpos + 14 > tlen || memcmp(tramp + tpos, op, 6) || le64(tramp + tpos + 6) != dest)
                    bad("jmp rel not rewritten to jmp [rip]; .quad dest", le64(tramp + tpos + 6), dest);
                tpos += 14;
            } else if (in->id == X86_INS_CALL) {
                static const uint8_t op[8] = {0xFF, 0x15, 2, 0, 0, 0, 0xEB, 0x08};
                if (tpos + 16 > tlen || memcmp(tramp + tpos, op, 8) || le64(tramp + tpos + 8) != dest)
                    bad("call rel not rewritten to call [rip+2]", le64(tramp + tpos + 8), dest);
                tpos += 16;
            } else {
                const uint8_t *c = tramp + tpos;
                size_t cl = tlen - tpos;
                uint64_t ca = tp;
                if (!cs_disasm_iter(cs, &c, &cl, &ca, out) || out->id != in->id)
                    bad("conditional branch changed condition", out->id, in->id);
                size_t n = out->size;
                uint64_t hop = 0;
                if (!imm_target(out, &hop) || hop != tp + n + 2)
                    bad("conditional hop", hop, tp + n + 2);
                static const uint8_t rest[8] = {0xEB, 0x0E, 0xFF, 0x25, 0, 0, 0, 0};
                if (tpos + n + 16 > tlen || memcmp(tramp + tpos + n, rest, 8) ||
                    le64(tramp + tpos + n + 8) != dest)
                    bad("conditional destination", le64(tramp + tpos + n + 8), dest);
                tpos += n + 16;
            }
            continue;
        }
        if (rip_operand(in, &disp)) {
            uint64_t want = addr + (uint64_t)disp; /* addr is already past the instruction */
            const uint8_t *c = tramp + tpos;
            size_t cl = tlen - tpos;
            uint64_t ca = tp;
            if (!cs_disasm_iter(cs, &c, &cl, &ca, out))
                bad("undecodable relocation", tp, 0);
            int64_t d2 = 0;
            if (rip_operand(out, &d2)) {
                if (out->id != in->id || ca + (uint64_t)d2 != want)
                    bad("RIP-relative operand moved", ca + (uint64_t)d2, want);
                tpos += out->size;
                continue;
            }
            /* Far form: movabs r64, want (then, for mov, a load through it). */
            if (out->id != X86_INS_MOVABS || out->detail->x86.op_count < 2 ||
                out->detail->x86.operands[1].type != X86_OP_IMM ||
                (uint64_t)out->detail->x86.operands[1].imm != want)
                bad("far RIP-relative rewrite", out->detail->x86.op_count >= 2 ?
                    (uint64_t)out->detail->x86.operands[1].imm : 0, want);
            goto done; /* lengths from here on are not predictable */
        }
        if (tpos + in->size > tlen || memcmp(tramp + tpos, in->bytes, in->size))
            bad("instruction not copied as is", tpos, in->size);
        tpos += in->size;
    }
    if (!last_ends) {
        static const uint8_t op[6] = {0xFF, 0x25, 0, 0, 0, 0};
        uint64_t back = (uint64_t)(uintptr_t)target + p->window_len;
        if (tpos + 14 > tlen || memcmp(tramp + tpos, op, 6) || le64(tramp + tpos + 6) != back)
            bad("no jump back to target + window", tpos + 14 <= tlen ? le64(tramp + tpos + 6) : 0, back);
    }
done:
    cs_free(in, 1);
    cs_free(out, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static csh cs;
    if (!cs) {
        if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
            abort();
        cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
    }
    if (size < 1)
        return 0;
    int near = data[0] & 1;
    data++;
    size--;
    size_t n = size < TARGET_LEN ? size : TARGET_LEN;
    memset(target_buf, 0xCC, sizeof target_buf); /* int3 after the input: never a valid continuation */
    memcpy(target_buf, data, n);
    memset(slot_buf, 0, sizeof slot_buf);
    vs_hook_plan plan;
    memset(&plan, 0, sizeof plan);
    char why[256] = "";
    vs_status st = vs_hook_arch_plan(target_buf, n, (const void *)(uintptr_t)0x7000000000ull, slot_buf, near,
                                     &plan, why, sizeof why);
    if (st != VS_OK) {
        if (st != VS_ERR_NOT_SUPPORTED || !why[0])
            bad("refusal without VS_ERR_NOT_SUPPORTED and a reason", (uint64_t)st, 0);
        return 0;
    }
    if (plan.patch_len == 0 || plan.patch_len > VS_HOOK_MAX_PATCH || plan.window_len < plan.patch_len ||
        plan.window_len > n || plan.code_len > VS_HOOK_SLOT_SIZE || plan.tramp_offset >= plan.code_len)
        bad("plan out of bounds", plan.window_len, n);
    memcpy(slot_buf, plan.code, plan.code_len);
    verify(cs, target_buf, &plan);
    return 0;
}
