/* The inline-patching hook engine (backends/common/hook).
 *
 * The targets are written in assembly below so that their prologues are known
 * to the byte: a RIP/PC-relative load, a conditional branch, a call, a
 * function shorter than the patch, a loop back into the patched bytes. Each
 * test hooks a target, calls it (the replacement must run), calls the original
 * through the trampoline (the original result must come back), removes the hook
 * and checks the original bytes and behaviour are back.
 *
 * "Far" tests copy position-independent blobs into a page whose +-2 GiB
 * neighbourhood is reserved (PROT_NONE, no backing), so that no trampoline can
 * be placed within reach and the engine must use its absolute-jump patch.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/hook/hook.h"

typedef int64_t (*fn1)(int64_t);

/* ---- targets ------------------------------------------------------------ */

#if defined(__x86_64__)
#define HK_NEAR_KIND VS_HOOK_KIND_X86_REL32
#define HK_FAR_KIND VS_HOOK_KIND_X86_ABS64
#define HK_NEAR_PATCH 5
__asm__(".intel_syntax noprefix\n"
        ".text\n"
        /* (1) RIP-relative load in the first 7 bytes: returns hk_rip_data + x */
        ".p2align 4\n"
        ".globl hk_rip_load\n .hidden hk_rip_load\n .type hk_rip_load,@function\n"
        "hk_rip_load:\n"
        "  mov rax, qword ptr [rip + hk_rip_data]\n"
        "  add rax, rdi\n"
        "  ret\n"
        /* (2) 6 bytes: `mov eax, 42` (5) covers the 5-byte patch exactly */
        ".p2align 4\n"
        ".globl hk_short\n .hidden hk_short\n .type hk_short,@function\n"
        "hk_short:\n"
        "  mov eax, 42\n"
        "  ret\n"
        /* 3 bytes: shorter than any patch */
        ".p2align 4\n"
        ".globl hk_tiny\n .hidden hk_tiny\n .type hk_tiny,@function\n"
        "hk_tiny:\n"
        "  xor eax, eax\n"
        "  ret\n"
        /* (4) jcc rel8 in the window: x == 0 ? 77 : x + 1 */
        ".p2align 4\n"
        ".globl hk_jcc8\n .hidden hk_jcc8\n .type hk_jcc8,@function\n"
        "hk_jcc8:\n"
        "  test rdi, rdi\n"
        "  je 1f\n"
        "  lea rax, [rdi + 1]\n"
        "  ret\n"
        "1: mov eax, 77\n"
        "  ret\n"
        /* jcc rel32 (0F 84) in the window: same function */
        ".p2align 4\n"
        ".globl hk_jcc32\n .hidden hk_jcc32\n .type hk_jcc32,@function\n"
        "hk_jcc32:\n"
        "  test rdi, rdi\n"
        "  .byte 0x0f, 0x84\n"
        "  .long 1f - (. + 4)\n"
        "  lea rax, [rdi + 1]\n"
        "  ret\n"
        "1: mov eax, 77\n"
        "  ret\n"
        /* jrcxz in the window: x == 0 ? 77 : x + 1 */
        ".p2align 4\n"
        ".globl hk_jrcxz\n .hidden hk_jrcxz\n .type hk_jrcxz,@function\n"
        "hk_jrcxz:\n"
        "  mov rcx, rdi\n"
        "  jrcxz 1f\n"
        "  lea rax, [rdi + 1]\n"
        "  ret\n"
        "1: mov eax, 77\n"
        "  ret\n"
        /* call rel32 as the whole window: 100 + x */
        ".p2align 4\n"
        ".globl hk_call\n .hidden hk_call\n .type hk_call,@function\n"
        "hk_call:\n"
        "  call hk_helper\n"
        "  add rax, rdi\n"
        "  ret\n"
        "hk_helper:\n"
        "  mov eax, 100\n"
        "  ret\n"
        /* (5) a later branch lands at +2, inside the 5-byte window: counts to x */
        ".p2align 4\n"
        ".globl hk_backjump\n .hidden hk_backjump\n .type hk_backjump,@function\n"
        "hk_backjump:\n"
        "  xor eax, eax\n"
        "2: add eax, 1\n"
        "  cmp eax, edi\n"
        "  jl 2b\n"
        "  ret\n"
        /* a branch inside the window to the entry: decrements x to 0, returns 1 */
        ".p2align 4\n"
        ".globl hk_selfloop\n .hidden hk_selfloop\n .type hk_selfloop,@function\n"
        "hk_selfloop:\n"
        "  dec edi\n"
        "  jnz hk_selfloop\n"
        "  mov eax, 1\n"
        "  ret\n"
        /* (6) one 5-byte instruction as the window, 16-byte aligned: x + 1 */
        ".p2align 4\n"
        ".globl hk_count\n .hidden hk_count\n .type hk_count,@function\n"
        "hk_count:\n"
        "  mov eax, 1\n"
        "  add eax, edi\n"
        "  ret\n"
        /* the same at 6 mod 8: the patch crosses an 8-byte word (EB FE protocol) */
        ".p2align 4\n"
        "  .byte 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc\n"
        ".globl hk_count_odd\n .hidden hk_count_odd\n .type hk_count_odd,@function\n"
        "hk_count_odd:\n"
        "  mov eax, 1\n"
        "  add eax, edi\n"
        "  ret\n"
        /* (3) blobs copied to a far page (position-independent, data inside) */
        ".p2align 4\n"
        ".globl hk_far_blob\n .hidden hk_far_blob\n"
        "hk_far_blob:\n"
        /* +0: x < 0 ? -1 : data + x; window 15 = rip load, jcc, add */
        "  mov rax, qword ptr [rip + 3f]\n"
        "  test rdi, rdi\n"
        "  js 1f\n"
        "  add rax, rdi\n"
        "  ret\n"
        "1: mov rax, -1\n"
        "  ret\n"
        ".p2align 3\n"
        "3: .quad 0x2000\n"
        /* +64: mov eax, 42; ret (refused far: ends inside 14 bytes) */
        ".p2align 6\n"
        "  mov eax, 42\n"
        "  ret\n"
        /* +128: cmp [rip+x], 0 (refused far: only mov/lea are rewritten) */
        ".p2align 6\n"
        "  cmp qword ptr [rip + 4f], 0\n"
        "  mov eax, 1\n"
        "  mov eax, 2\n"
        "  ret\n"
        ".p2align 3\n"
        "4: .quad 0\n"
        /* +192: lea r12, [rip+x]; mov r13d, [rip+x] (rewritten far): 64-bit + 32-bit load + x */
        ".p2align 6\n"
        "  push r12\n"
        "  push r13\n"
        "  lea r12, [rip + 5f]\n"
        "  mov r13d, dword ptr [rip + 5f]\n"
        "  mov rax, qword ptr [r12]\n"
        "  add rax, r13\n"
        "  add rax, rdi\n"
        "  pop r13\n"
        "  pop r12\n"
        "  ret\n"
        ".p2align 3\n"
        "5: .long 0x300, 0x7\n"
        /* +256: jcc rel32 in the window: x == 0 ? 77 : x + 1 */
        ".p2align 6\n"
        "  test rdi, rdi\n"
        "  .byte 0x0f, 0x84\n"
        "  .long 1f - (. + 4)\n"
        "  lea rax, [rdi + 1]\n"
        "  nop\n"
        "  ret\n"
        "1: mov eax, 77\n"
        "  ret\n"
        /* +320: call in the window, ret ends it exactly: 100 + x */
        ".p2align 6\n"
        "  push rbx\n"
        "  mov rbx, rdi\n"
        "  call 2f\n"
        "  add rax, rbx\n"
        "  pop rbx\n"
        "  ret\n"
        "2: mov eax, 100\n"
        "  ret\n"
        /* +384: jrcxz in the window: x == 0 ? 77 : x + 1 */
        ".p2align 6\n"
        "  mov rcx, rdi\n"
        "  jrcxz 1f\n"
        "  lea rax, [rdi + 1]\n"
        "  nop\n nop\n nop\n nop\n nop\n"
        "  ret\n"
        "1: mov eax, 77\n"
        "  ret\n"
        ".p2align 6\n"
        ".globl hk_far_blob_end\n .hidden hk_far_blob_end\n"
        "hk_far_blob_end:\n"
        ".data\n"
        ".p2align 3\n"
        "hk_rip_data: .quad 0x1000\n"
        ".text\n"
        ".att_syntax prefix\n");
#define HK_ODD_ENTRY_MOD8 6          /* hk_count_odd's entry, mod 8 */
#define HK_BACKJUMP_OF_5 5           /* hk_backjump(5) */
#define HK_FAR_REFUSED_WHY "out of reach" /* why the blob at HK_FAR_REFUSED is refused */

#elif defined(__aarch64__)
#define HK_NEAR_KIND VS_HOOK_KIND_A64_B
#define HK_FAR_KIND VS_HOOK_KIND_A64_ABS
#define HK_NEAR_PATCH 4
__asm__(".text\n"
        /* (1) ADRP + LDR literal in the window: returns 0xff0 + 0x10 + x */
        ".p2align 4\n"
        ".globl hk_rip_load\n .hidden hk_rip_load\n .type hk_rip_load,%function\n"
        "hk_rip_load:\n"
        "  adrp x1, hk_rip_data\n"
        "  ldr x1, [x1, :lo12:hk_rip_data]\n"
        "  ldr x2, 9f\n"
        "  add x0, x0, x2\n"
        "  add x0, x0, x1\n"
        "  ret\n"
        ".p2align 3\n"
        "9: .quad 0x10\n"
        /* (2) 8 bytes: `mov x0, #42` covers the 4-byte patch exactly */
        ".p2align 4\n"
        ".globl hk_short\n .hidden hk_short\n .type hk_short,%function\n"
        "hk_short:\n"
        "  mov x0, #42\n"
        "  ret\n"
        ".p2align 4\n"
        ".globl hk_tiny\n .hidden hk_tiny\n .type hk_tiny,%function\n"
        "hk_tiny:\n"
        "  mov x0, #0\n"
        "  ret\n"
        /* (4) CBZ in the window: x == 0 ? 77 : x + 1 */
        ".p2align 4\n"
        ".globl hk_jcc8\n .hidden hk_jcc8\n .type hk_jcc8,%function\n"
        "hk_jcc8:\n"
        "  cbz x0, 1f\n"
        "  add x0, x0, #1\n"
        "  nop\n"
        "  nop\n"
        "  ret\n"
        "1: mov x0, #77\n"
        "  ret\n"
        /* B.cond in the window */
        ".p2align 4\n"
        ".globl hk_jcc32\n .hidden hk_jcc32\n .type hk_jcc32,%function\n"
        "hk_jcc32:\n"
        "  cmp x0, #0\n"
        "  b.eq 1f\n"
        "  add x0, x0, #1\n"
        "  nop\n"
        "  ret\n"
        "1: mov x0, #77\n"
        "  ret\n"
        /* TBNZ in the window */
        ".p2align 4\n"
        ".globl hk_jrcxz\n .hidden hk_jrcxz\n .type hk_jrcxz,%function\n"
        "hk_jrcxz:\n"
        "  cmp x0, #0\n"
        "  cset x1, eq\n"
        "  tbnz x1, #0, 1f\n"
        "  add x0, x0, #1\n"
        "  ret\n"
        "1: mov x0, #77\n"
        "  ret\n"
        /* BL in the window: 100 + x */
        ".p2align 4\n"
        ".globl hk_call\n .hidden hk_call\n .type hk_call,%function\n"
        "hk_call:\n"
        "  stp x29, x30, [sp, #-32]!\n"
        "  str x19, [sp, #16]\n"
        "  mov x19, x0\n"
        "  bl hk_helper\n"
        "  add x0, x0, x19\n"
        "  ldr x19, [sp, #16]\n"
        "  ldp x29, x30, [sp], #32\n"
        "  ret\n"
        "hk_helper:\n"
        "  mov x0, #100\n"
        "  ret\n"
        /* (5) a later conditional branch loops back to the entry: counts x down to 0
         * (the near window is one word, so the entry is the only place inside it) */
        ".p2align 4\n"
        ".globl hk_backjump\n .hidden hk_backjump\n .type hk_backjump,%function\n"
        "hk_backjump:\n"
        "  sub w0, w0, #1\n"
        "  nop\n"
        "  nop\n"
        "  nop\n"
        "  nop\n"
        "  cmp w0, #0\n"
        "  b.gt hk_backjump\n"
        "  ret\n"
        /* a branch inside the window to the entry */
        ".p2align 4\n"
        ".globl hk_selfloop\n .hidden hk_selfloop\n .type hk_selfloop,%function\n"
        "hk_selfloop:\n"
        "  sub w0, w0, #1\n"
        "  cbnz w0, hk_selfloop\n"
        "  mov w0, #1\n"
        "  nop\n"
        "  ret\n"
        /* (6) x + 1 */
        ".p2align 4\n"
        ".globl hk_count\n .hidden hk_count\n .type hk_count,%function\n"
        "hk_count:\n"
        "  add x0, x0, #1\n"
        "  nop\n"
        "  nop\n"
        "  nop\n"
        "  ret\n"
        /* the same at 4 mod 8: the patch's quad is not 8-byte aligned */
        ".p2align 4\n"
        "  nop\n"
        ".globl hk_count_odd\n .hidden hk_count_odd\n .type hk_count_odd,%function\n"
        "hk_count_odd:\n"
        "  add x0, x0, #1\n"
        "  nop\n"
        "  nop\n"
        "  nop\n"
        "  ret\n"
        /* (3) blobs copied to a far page */
        ".p2align 6\n"
        ".globl hk_far_blob\n .hidden hk_far_blob\n"
        "hk_far_blob:\n"
        /* +0: x < 0 ? -1 : 0x2000 + x; window: ldr literal, tbnz, add, nop */
        "  ldr x1, 3f\n"
        "  tbnz x0, #63, 1f\n"
        "  add x0, x0, x1\n"
        "  nop\n"
        "  ret\n"
        "1: mov x0, #-1\n"
        "  ret\n"
        ".p2align 3\n"
        "3: .quad 0x2000\n"
        /* +64: shorter than the patch */
        ".p2align 6\n"
        "  mov x0, #42\n"
        "  ret\n"
        /* +128: uses x16 (refused) */
        ".p2align 6\n"
        "  mov x16, x0\n"
        "  add x0, x16, #1\n"
        "  nop\n"
        "  nop\n"
        "  ret\n"
        /* +192: ADR and a 32-bit LDR literal: 64-bit + 32-bit load + x */
        ".p2align 6\n"
        "  adr x1, 5f\n"
        "  ldr x2, [x1]\n"
        "  ldr w3, 5f\n"
        "  add x0, x0, x2\n"
        "  add x0, x0, x3\n"
        "  ret\n"
        ".p2align 3\n"
        "5: .long 0x300, 0x7\n"
        /* +256: B.cond in the window, ret ends it: x == 0 ? 77 : x + 1 */
        ".p2align 6\n"
        "  cmp x0, #0\n"
        "  b.eq 1f\n"
        "  add x0, x0, #1\n"
        "  ret\n"
        "1: mov x0, #77\n"
        "  ret\n"
        /* +320: BL in the window: 100 + x */
        ".p2align 6\n"
        "  stp x29, x30, [sp, #-32]!\n"
        "  str x19, [sp, #16]\n"
        "  mov x19, x0\n"
        "  bl 2f\n"
        "  add x0, x0, x19\n"
        "  ldr x19, [sp, #16]\n"
        "  ldp x29, x30, [sp], #32\n"
        "  ret\n"
        "2: mov x0, #100\n"
        "  ret\n"
        /* +384: TBNZ in the window: x == 0 ? 77 : x + 1 */
        ".p2align 6\n"
        "  cmp x0, #0\n"
        "  cset x1, eq\n"
        "  tbnz x1, #0, 1f\n"
        "  add x0, x0, #1\n"
        "  ret\n"
        "1: mov x0, #77\n"
        "  ret\n"
        ".p2align 6\n"
        ".globl hk_far_blob_end\n .hidden hk_far_blob_end\n"
        "hk_far_blob_end:\n"
        ".data\n"
        ".p2align 3\n"
        "hk_rip_data: .quad 0xff0\n"
        ".text\n");
#define HK_ODD_ENTRY_MOD8 4
#define HK_BACKJUMP_OF_5 0
#define HK_FAR_REFUSED_WHY "x16"
#else
#error "test_hook.c has targets for x86_64 and aarch64 only"
#endif

#define HK_FAR_MAIN 0     /* data + x, or -1 for x < 0 (data 0x2000) */
#define HK_FAR_SHORT 64   /* refused: shorter than the patch */
#define HK_FAR_REFUSED 128 /* refused: see HK_FAR_REFUSED_WHY */
#define HK_FAR_TWO 192    /* HK_FAR_TWO_DATA + x: a 64-bit and a 32-bit load of one quad */
#define HK_FAR_JCC 256    /* x == 0 ? 77 : x + 1, conditional branch in the window */
#define HK_FAR_CALL 320   /* 100 + x, call in the window */
#define HK_FAR_JCC2 384   /* x == 0 ? 77 : x + 1, jrcxz / tbnz in the window */
#define HK_FAR_MAIN_DATA 0x2000
#define HK_FAR_TWO_DATA 0x700000600ll /* 64-bit 0x700000300 + 32-bit 0x300 */
#define HK_RIP_DATA 0x1000

int64_t hk_rip_load(int64_t x);
int64_t hk_short(int64_t ignored);
int64_t hk_tiny(int64_t ignored);
int64_t hk_jcc8(int64_t x);
int64_t hk_jcc32(int64_t x);
int64_t hk_jrcxz(int64_t x);
int64_t hk_call(int64_t x);
int64_t hk_backjump(int64_t x);
int64_t hk_selfloop(int64_t x);
int64_t hk_count(int64_t x);
int64_t hk_count_odd(int64_t x);
extern const unsigned char hk_far_blob[], hk_far_blob_end[];

/* ---- helpers ------------------------------------------------------------ */

static void *fp(fn1 f)
{
    void *p;
    memcpy(&p, &f, sizeof p);
    return p;
}

static fn1 as_fn(void *p)
{
    fn1 f;
    memcpy(&f, &p, sizeof f);
    return f;
}

static atomic_long hk_repl_calls;

/* Replacements call the original through this pointer, which install
 * publishes before the patch goes live (read it atomically). */
static void *hk_orig_p;

static fn1 hk_orig(void)
{
    return as_fn(__atomic_load_n(&hk_orig_p, __ATOMIC_ACQUIRE));
}

static int64_t repl_times10(int64_t x)
{
    atomic_fetch_add(&hk_repl_calls, 1);
    return hk_orig()(x) * 10;
}

static int64_t repl_plus1000(int64_t x)
{
    atomic_fetch_add(&hk_repl_calls, 1);
    return hk_orig()(x) + 1000;
}

/* Hook target with repl; asserts success and the kind. */
static vs_hook_t *hook_ok(void *target, fn1 repl, vs_hook_kind kind)
{
    char why[256] = "";
    vs_hook_t *h = NULL;
    vs_status st = vs_hook_install(target, fp(repl), &hk_orig_p, &h, why, sizeof why);
    cr_assert_eq(st, VS_OK, "install failed: %s (%s)", vs_status_name(st), why);
    cr_assert_not_null(h);
    void *orig = hk_orig_p;
    cr_assert_not_null(orig);
    vs_hook_info info;
    cr_assert_eq(vs_hook_get_info(h, &info), VS_OK);
    cr_assert_eq(info.kind, kind, "kind %d, expected %d", info.kind, kind);
    cr_assert_eq(info.target, target);
    cr_assert_eq(info.trampoline, orig);
    cr_assert_geq(info.window_len, info.patch_len);
    return h;
}

/* Install must be refused with NOT_SUPPORTED and a reason containing `needle`. */
static void hook_refused(void *target, const char *needle)
{
    char why[256] = "";
    void *orig = (void *)&why;
    vs_hook_t *h = (vs_hook_t *)&why;
    vs_status st = vs_hook_install(target, fp(repl_times10), &orig, &h, why, sizeof why);
    cr_assert_eq(st, VS_ERR_NOT_SUPPORTED, "expected NOT_SUPPORTED, got %s (%s)", vs_status_name(st), why);
    cr_assert(strstr(why, needle) != NULL, "reason \"%s\" lacks \"%s\"", why, needle);
    cr_assert_eq(orig, (void *)&why, "out-parameter touched on failure");
    cr_assert_eq(h, (vs_hook_t *)&why, "out-parameter touched on failure");
}

static void skip_without_engine(void)
{
    if (!vs_hook_engine_available())
        cr_skip_test("built without the hook engine");
}

/* Hook, check hooked and original results, remove, check restored. */
static void round_trip(fn1 f, int64_t x, int64_t expect, vs_hook_kind kind)
{
    unsigned char before[16];
    memcpy(before, fp(f), sizeof before);
    cr_assert_eq(f(x), expect, "unhooked result");
    atomic_store(&hk_repl_calls, 0);
    vs_hook_t *h = hook_ok(fp(f), repl_times10, kind);
    cr_assert(memcmp(before, fp(f), sizeof before) != 0, "target bytes unchanged");
    cr_assert_eq(f(x), expect * 10, "hooked result");
    cr_assert_eq(atomic_load(&hk_repl_calls), 1);
    cr_assert_eq(hk_orig()(x), expect, "original through the trampoline");
    cr_assert_eq(vs_hook_remove(h), VS_OK);
    cr_assert(memcmp(before, fp(f), sizeof before) == 0, "target bytes not restored");
    cr_assert_eq(f(x), expect, "restored result");
    cr_assert_eq(atomic_load(&hk_repl_calls), 1, "replacement ran after remove");
    cr_assert_eq(hk_orig()(x), expect, "the trampoline stays callable after remove");
}

/* A read+execute page in the middle of a reserved, inaccessible +-2 GiB
 * (plus margin) neighbourhood, holding a copy of hk_far_blob. */
typedef struct far_page {
    uint8_t *reservation; /* start of the PROT_NONE reservation */
    size_t size;          /* its bytes */
    uint8_t *code;        /* the page with the blob */
} far_page;

static far_page far_page_make(void)
{
    far_page fpg;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    fpg.size = ((size_t)4 << 30) + ((size_t)64 << 20);
    void *r = mmap(NULL, fpg.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(r, MAP_FAILED, "cannot reserve 4 GiB of address space");
    fpg.reservation = r;
    fpg.code = fpg.reservation + fpg.size / 2;
    void *c = mmap(fpg.code, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    cr_assert_eq(c, (void *)fpg.code);
    size_t blob = (size_t)(hk_far_blob_end - hk_far_blob);
    cr_assert_leq(blob, page);
    memcpy(fpg.code, hk_far_blob, blob);
    cr_assert_eq(mprotect(fpg.code, page, PROT_READ | PROT_EXEC), 0);
    __builtin___clear_cache((char *)fpg.code, (char *)fpg.code + blob);
    return fpg;
}

static void far_page_free(far_page *fpg)
{
    munmap(fpg->reservation, fpg->size);
}

/* ---- tests -------------------------------------------------------------- */

/* (1) */
Test(hook, pc_relative_load_is_relocated)
{
    skip_without_engine();
    round_trip(hk_rip_load, 5, HK_RIP_DATA + 5, HK_NEAR_KIND);
}

/* (2) The near patch (x86_64 5 bytes, aarch64 4) covers `mov eax/x0, 42`
 * exactly: patched, the `ret` stays. (The far patch refuses the same code:
 * far_target_uses_absolute_patch.) */
Test(hook, short_function)
{
    skip_without_engine();
    round_trip(hk_short, 0, 42, HK_NEAR_KIND);
    vs_hook_t *h = hook_ok(fp(hk_short), repl_plus1000, HK_NEAR_KIND);
    vs_hook_info info;
    cr_assert_eq(vs_hook_get_info(h, &info), VS_OK);
    cr_assert_eq(info.patch_len, HK_NEAR_PATCH);
    cr_assert_eq(info.window_len, HK_NEAR_PATCH);
    cr_assert_eq(vs_hook_remove(h), VS_OK);
}

Test(hook, function_shorter_than_the_patch_is_refused)
{
    skip_without_engine();
#if defined(__aarch64__)
    cr_skip_test("every aarch64 function holds the one-word near patch");
#endif
    unsigned char before[8];
    memcpy(before, fp(hk_tiny), sizeof before);
    hook_refused(fp(hk_tiny), "shorter than");
    cr_assert(memcmp(before, fp(hk_tiny), sizeof before) == 0);
    cr_assert_eq(hk_tiny(0), 0);
}

/* (3) No memory within reach: the absolute patch, far RIP operands rewritten. */
Test(hook, far_target_uses_absolute_patch)
{
    skip_without_engine();
    far_page fpg = far_page_make();
    fn1 f = as_fn(fpg.code + HK_FAR_MAIN);
    cr_assert_eq(f(5), HK_FAR_MAIN_DATA + 5);
    cr_assert_eq(f(-3), -1);
    unsigned char before[16];
    memcpy(before, fpg.code, sizeof before);

    atomic_store(&hk_repl_calls, 0);
    vs_hook_t *h = hook_ok(fp(f), repl_plus1000, HK_FAR_KIND);
    vs_hook_info info;
    cr_assert_eq(vs_hook_get_info(h, &info), VS_OK);
    uintptr_t t = (uintptr_t)info.target, tr = (uintptr_t)info.trampoline;
    cr_assert_gt(t > tr ? t - tr : tr - t, (uintptr_t)INT32_MAX, "trampoline unexpectedly near");
    cr_assert_eq(f(5), HK_FAR_MAIN_DATA + 5 + 1000);
    cr_assert_eq(f(-3), -1 + 1000, "jcc taken through the trampoline");
    cr_assert_eq(hk_orig()(7), HK_FAR_MAIN_DATA + 7);
    cr_assert_eq(atomic_load(&hk_repl_calls), 2);
    cr_assert_eq(vs_hook_remove(h), VS_OK);
    cr_assert(memcmp(before, fpg.code, sizeof before) == 0);
    cr_assert_eq(f(5), HK_FAR_MAIN_DATA + 5);

    fn1 two = as_fn(fpg.code + HK_FAR_TWO);
    cr_assert_eq(two(1), HK_FAR_TWO_DATA + 1);
    h = hook_ok(fp(two), repl_plus1000, HK_FAR_KIND);
    cr_assert_eq(two(1), HK_FAR_TWO_DATA + 1 + 1000);
    cr_assert_eq(hk_orig()(2), HK_FAR_TWO_DATA + 2);
    cr_assert_eq(vs_hook_remove(h), VS_OK);
    cr_assert_eq(two(1), HK_FAR_TWO_DATA + 1);

    hook_refused(fpg.code + HK_FAR_SHORT, "shorter than");
    hook_refused(fpg.code + HK_FAR_REFUSED, HK_FAR_REFUSED_WHY);
    far_page_free(&fpg);
}

Test(hook, far_branches_and_calls)
{
    skip_without_engine();
    far_page fpg = far_page_make();
    round_trip(as_fn(fpg.code + HK_FAR_JCC), 0, 77, HK_FAR_KIND);
    round_trip(as_fn(fpg.code + HK_FAR_JCC), 4, 5, HK_FAR_KIND);
    round_trip(as_fn(fpg.code + HK_FAR_CALL), 3, 103, HK_FAR_KIND);
    round_trip(as_fn(fpg.code + HK_FAR_JCC2), 0, 77, HK_FAR_KIND);
    round_trip(as_fn(fpg.code + HK_FAR_JCC2), 4, 5, HK_FAR_KIND);
    far_page_free(&fpg);
}

/* (4) Conditional branches and calls in the window become absolute forms. */
Test(hook, conditional_branch_in_window)
{
    skip_without_engine();
    round_trip(hk_jcc8, 0, 77, HK_NEAR_KIND);
    round_trip(hk_jcc8, 4, 5, HK_NEAR_KIND);
    round_trip(hk_jcc32, 0, 77, HK_NEAR_KIND);
    round_trip(hk_jcc32, 4, 5, HK_NEAR_KIND);
    round_trip(hk_jrcxz, 0, 77, HK_NEAR_KIND);
    round_trip(hk_jrcxz, 4, 5, HK_NEAR_KIND);
}

Test(hook, call_in_window)
{
    skip_without_engine();
    round_trip(hk_call, 3, 103, HK_NEAR_KIND);
}

/* (5) */
Test(hook, branch_back_into_the_patch_is_refused)
{
    skip_without_engine();
    unsigned char before[16];
    memcpy(before, fp(hk_backjump), sizeof before);
    hook_refused(fp(hk_backjump), "back into the");
    cr_assert(memcmp(before, fp(hk_backjump), sizeof before) == 0);
    cr_assert_eq(hk_backjump(5), HK_BACKJUMP_OF_5);
    hook_refused(fp(hk_selfloop), "back into the");
    cr_assert_eq(hk_selfloop(3), 1);
}

/* (6) Threads call the target while the main thread installs and removes. */
typedef struct hammer {
    fn1 f;                /* the target */
    atomic_int stop;      /* set by the main thread */
    atomic_long plain;    /* calls that returned the unhooked result */
    atomic_long hooked;   /* calls that returned the hooked result */
    atomic_long wrong;    /* anything else */
} hammer;

static void *hammer_thread(void *arg)
{
    hammer *hm = arg;
    for (int64_t i = 0; !atomic_load(&hm->stop); i++) {
        int64_t x = i & 0xffff;
        int64_t r = hm->f(x);
        if (r == x + 1)
            atomic_fetch_add(&hm->plain, 1);
        else if (r == x + 1 + 1000)
            atomic_fetch_add(&hm->hooked, 1);
        else
            atomic_fetch_add(&hm->wrong, 1);
    }
    return NULL;
}

static void hammer_target(fn1 f)
{
    hammer hm = {.f = f};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, hammer_thread, &hm), 0);
    struct timespec pause = {0, 200 * 1000};
    for (int round = 0; round < 300; round++) {
        vs_hook_t *h = NULL;
        char why[256] = "";
        vs_status st = vs_hook_install(fp(f), fp(repl_plus1000), &hk_orig_p, &h, why, sizeof why);
        cr_assert_eq(st, VS_OK, "round %d: %s", round, why);
        nanosleep(&pause, NULL);
        cr_assert_eq(vs_hook_remove(h), VS_OK);
        nanosleep(&pause, NULL);
    }
    atomic_store(&hm.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&hm.wrong), 0);
    cr_assert_gt(atomic_load(&hm.plain), 0);
    cr_assert_gt(atomic_load(&hm.hooked), 0);
    cr_log_info("calls: %ld plain, %ld hooked", atomic_load(&hm.plain), atomic_load(&hm.hooked));
}

Test(hook, install_and_remove_while_threads_call, .timeout = 60)
{
    skip_without_engine();
    hammer_target(hk_count);
}

Test(hook, install_and_remove_across_a_word_while_threads_call, .timeout = 60)
{
    skip_without_engine();
    cr_assert_eq((uintptr_t)fp(hk_count_odd) & 7, HK_ODD_ENTRY_MOD8, "misplaced test function");
    hammer_target(hk_count_odd);
}

/* (7) */
Test(hook, double_install_is_refused)
{
    skip_without_engine();
    vs_hook_t *h = hook_ok(fp(hk_rip_load), repl_times10, HK_NEAR_KIND);
    char why[256] = "";
    void *orig = NULL;
    vs_hook_t *h2 = NULL;
    cr_assert_eq(vs_hook_install(fp(hk_rip_load), fp(repl_plus1000), &orig, &h2, why, sizeof why),
                 VS_ERR_BUSY);
    cr_assert(strstr(why, "already hooked") != NULL, "%s", why);
    cr_assert_null(h2);
    cr_assert_eq(vs_hook_install((uint8_t *)fp(hk_rip_load) + 1, fp(repl_plus1000), &orig, &h2, why,
                                 sizeof why),
                 VS_ERR_BUSY, "a target inside a hooked window");
    cr_assert_eq(hk_rip_load(1), (HK_RIP_DATA + 1) * 10);
    cr_assert_eq(vs_hook_remove(h), VS_OK);
    cr_assert_eq(vs_hook_remove(h), VS_ERR_INVALID_HANDLE, "second remove");
    h = hook_ok(fp(hk_rip_load), repl_plus1000, HK_NEAR_KIND);
    cr_assert_eq(hk_rip_load(1), HK_RIP_DATA + 1 + 1000);
    cr_assert_eq(vs_hook_remove(h), VS_OK);
    cr_assert_eq(hk_rip_load(1), HK_RIP_DATA + 1);
}

/* A hook whose bytes were overwritten by someone else is not "restored". */
Test(hook, remove_refuses_when_the_patch_was_changed)
{
    skip_without_engine();
    vs_hook_t *h = hook_ok(fp(hk_jcc8), repl_times10, HK_NEAR_KIND);
    vs_hook_info info;
    cr_assert_eq(vs_hook_get_info(h, &info), VS_OK);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *p = (uint8_t *)((uintptr_t)info.target & ~(uintptr_t)(page - 1));
    cr_assert_eq(mprotect(p, page, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
    uint8_t saved = ((uint8_t *)info.target)[1];
    ((uint8_t *)info.target)[1] ^= 0x55;
    cr_assert_eq(vs_hook_remove(h), VS_ERR_BUSY);
    ((uint8_t *)info.target)[1] = saved;
    cr_assert_eq(mprotect(p, page, PROT_READ | PROT_EXEC), 0);
    cr_assert_eq(vs_hook_remove(h), VS_OK);
    cr_assert_eq(hk_jcc8(4), 5);
}

/* The library holding a hooked function was unloaded: remove just forgets it. */
Test(hook, remove_after_the_code_is_unmapped)
{
    skip_without_engine();
    far_page fpg = far_page_make();
    vs_hook_t *h = hook_ok(fpg.code + HK_FAR_MAIN, repl_plus1000, HK_FAR_KIND);
    far_page_free(&fpg);
    cr_assert_eq(vs_hook_remove(h), VS_OK);
    cr_assert_eq(vs_hook_remove(h), VS_ERR_INVALID_HANDLE);
}

/* (8) */
Test(hook, bad_arguments)
{
    char why[256];
    void *orig = NULL;
    vs_hook_t *h = NULL;
    void *t = fp(hk_count), *r = fp(repl_plus1000);
    cr_assert_eq(vs_hook_install(NULL, r, &orig, &h, why, sizeof why), VS_ERR_INVALID_ARGUMENT);
    cr_assert_eq(vs_hook_install(t, NULL, &orig, &h, why, sizeof why), VS_ERR_INVALID_ARGUMENT);
    cr_assert_eq(vs_hook_install(t, r, NULL, &h, why, sizeof why), VS_ERR_INVALID_ARGUMENT);
    cr_assert_eq(vs_hook_install(t, r, &orig, NULL, why, sizeof why), VS_ERR_INVALID_ARGUMENT);
    cr_assert_eq(vs_hook_install(t, r, &orig, &h, NULL, 16), VS_ERR_INVALID_ARGUMENT);
    cr_assert_null(h);
    cr_assert_null(orig);
    cr_assert_eq(vs_hook_remove(NULL), VS_ERR_INVALID_HANDLE);
    vs_hook_info info;
    cr_assert_eq(vs_hook_get_info(NULL, &info), VS_ERR_INVALID_HANDLE);
    if (!vs_hook_engine_available())
        return;
    cr_assert_eq(vs_hook_install(t, t, &orig, &h, why, sizeof why), VS_ERR_INVALID_ARGUMENT);
    static int64_t not_code[4] = {1, 2, 3, 4};
    cr_assert_eq(vs_hook_install(not_code, r, &orig, &h, why, sizeof why), VS_ERR_INVALID_ARGUMENT);
    cr_assert(strstr(why, "executable") != NULL, "%s", why);
    cr_assert_eq(vs_hook_install((void *)16, r, &orig, &h, NULL, 0), VS_ERR_INVALID_ARGUMENT);
    int local;
    cr_assert_eq(vs_hook_remove((vs_hook_t *)&local), VS_ERR_INVALID_HANDLE, "foreign pointer");
    h = hook_ok(t, repl_plus1000, HK_NEAR_KIND);
    cr_assert_eq(vs_hook_get_info(h, NULL), VS_ERR_INVALID_ARGUMENT);
    cr_assert_eq(vs_hook_remove(h), VS_OK);
}

Test(hook, stub_refuses_with_a_reason)
{
    if (vs_hook_engine_available())
        cr_skip_test("built with the hook engine");
    char why[256] = "";
    void *orig = NULL;
    vs_hook_t *h = NULL;
    cr_assert_eq(vs_hook_install(fp(hk_count), fp(repl_plus1000), &orig, &h, why, sizeof why),
                 VS_ERR_NOT_SUPPORTED);
    cr_assert(strstr(why, "built without the hook engine") != NULL, "%s", why);
}
