/* Unit tests of the simulated GPU (backends/sim/simdev.h), without the core.
 *
 * Each Criterion test runs in its own process, so the process-wide device table
 * starts fresh; setup() configures two small devices. Every test that creates
 * objects ends with expect_clean(), checking that the live counters returned to
 * zero (no leak in the simulator's bookkeeping).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "simdev.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GRAN (64 * KiB)

static simdev_t *dev;

static void configure(const char *spec)
{
    vs_sim_config c;
    cr_assert_eq(simdev_config_default(&c), VS_OK);
    cr_assert_eq(simdev_config_parse(&c, spec), VS_OK, "%s", simdev_last_error());
    cr_assert_eq(simdev_configure(&c), VS_OK, "%s", simdev_last_error());
}

static void setup(void)
{
    configure("devices:2,memory:64M,granularity:64K,page:256K");
    cr_assert_eq(simdev_open(0, &dev), VS_OK);
}

static void teardown(void)
{
    if (dev)
        simdev_close(dev);
    dev = NULL;
}

static void expect_clean_dev(simdev_t *d)
{
    vs_sim_counters c;
    cr_assert_eq(simdev_get_counters(d, &c), VS_OK);
    cr_expect_eq(c.reservations, 0);
    cr_expect_eq(c.reserved_bytes, 0);
    cr_expect_eq(c.phys_chunks, 0);
    cr_expect_eq(c.phys_bytes, 0);
    cr_expect_eq(c.mapped_bytes, 0);
    cr_expect_eq(c.host_registrations, 0);
    cr_expect_eq(c.host_registered_bytes, 0);
    cr_expect_eq(c.streams, 0);
    cr_expect_eq(c.events, 0);
    cr_expect_eq(c.external_bytes, 0);
    uint64_t free_b, total;
    cr_assert_eq(simdev_mem_info(d, &free_b, &total), VS_OK);
    cr_expect_eq(free_b, total);
}

static void expect_clean(void)
{
    expect_clean_dev(dev);
}

/* Reserve `size`, back [0, mapped) with one chunk, make it RW. */
typedef struct region {
    uint64_t va, size, mapped;
    simdev_handle chunk;
} region;

static region make_region(uint64_t size, uint64_t mapped)
{
    region r = {0, size, mapped, 0};
    cr_assert_eq(simdev_va_reserve(dev, size, 0, &r.va), VS_OK, "%s", simdev_last_error());
    if (mapped) {
        cr_assert_eq(simdev_phys_create(dev, mapped, &r.chunk), VS_OK, "%s", simdev_last_error());
        cr_assert_eq(simdev_map(dev, r.va, mapped, r.chunk, 0), VS_OK, "%s", simdev_last_error());
        cr_assert_eq(simdev_set_access(dev, r.va, mapped, SIMDEV_ACCESS_RW), VS_OK);
    }
    return r;
}

static void drop_region(region *r)
{
    if (r->mapped) {
        cr_assert_eq(simdev_unmap(dev, r->va, r->mapped), VS_OK, "%s", simdev_last_error());
        cr_assert_eq(simdev_phys_release(dev, r->chunk), VS_OK);
    }
    cr_assert_eq(simdev_va_free(dev, r->va, r->size), VS_OK, "%s", simdev_last_error());
}

/* Did `fn(arg)` in a child process die of a memory fault? */
static int dies_of_fault(void (*fn)(uint64_t), uint64_t arg)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);  /* sanitizers catch faults and exit(1) otherwise */
        signal(SIGBUS, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
}

static void touch_write(uint64_t p)
{
    *(volatile uint8_t *)(uintptr_t)p = 1;
}

static void touch_read(uint64_t p)
{
    (void)*(volatile uint8_t *)(uintptr_t)p;
}

static void fill_random(uint8_t *p, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rand_r(seed);
}

/* A gate a host function can block a stream on. */
typedef struct gate {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int open;
    atomic_int entered;
} gate;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->m, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
    atomic_init(&g->entered, 0);
}

static void gate_wait(void *arg)
{
    gate *g = arg;
    atomic_fetch_add(&g->entered, 1);
    pthread_mutex_lock(&g->m);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->m);
    pthread_mutex_unlock(&g->m);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->m);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->m);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void sleep_5ms(void *unused)
{
    (void)unused;
    sleep_ms(5);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ================================================================ configuration */

Test(simdev_config, defaults_and_parse)
{
    vs_sim_config c;
    cr_assert_eq(simdev_config_default(&c), VS_OK);
    cr_expect_eq(c.device_count, 1);
    cr_expect_eq(c.total_memory, 1ull << 30);
    cr_expect_eq(c.granularity, 64 * KiB);
    cr_expect_eq(c.preferred_page_size, 256 * KiB);
    cr_expect_eq(c.copy_bandwidth, 0);
    cr_expect_eq(c.integrated, 0);

    cr_assert_eq(simdev_config_parse(&c, "devices:3,memory:512M,granularity:2M,page:32MiB,"
                                         "bandwidth:10G,integrated:1"), VS_OK);
    cr_expect_eq(c.device_count, 3);
    cr_expect_eq(c.total_memory, 512 * MiB);
    cr_expect_eq(c.granularity, 2 * MiB);
    cr_expect_eq(c.preferred_page_size, 32 * MiB);
    cr_expect_eq(c.copy_bandwidth, 10ull << 30);
    cr_expect_eq(c.integrated, 1);
    cr_expect_eq(simdev_config_check(&c), VS_OK);

    vs_sim_config before = c;
    cr_expect_eq(simdev_config_parse(&c, "memory:12Q"), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_config_parse(&c, "colour:blue"), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_config_parse(&c, "devices:17"), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_config_parse(&c, "devices"), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_config_parse(&c, "memory:1G,bogus:1"), VS_ERR_INVALID_ARGUMENT);
    cr_expect_str_neq(simdev_last_error(), "");
    cr_expect_eq(memcmp(&before, &c, sizeof c), 0, "a failed parse must not change cfg");
    cr_expect_eq(simdev_config_parse(&c, NULL), VS_OK);
    cr_expect_eq(simdev_config_parse(&c, ""), VS_OK);

    c.granularity = 3 * 4096;
    cr_expect_eq(simdev_config_check(&c), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_configure(&c), VS_ERR_INVALID_ARGUMENT);
    simdev_config_default(&c);
    c.total_memory = GRAN + 1;
    cr_expect_eq(simdev_config_check(&c), VS_ERR_INVALID_ARGUMENT);
    simdev_config_default(&c);
    c.preferred_page_size = 0;
    cr_expect_eq(simdev_config_check(&c), VS_ERR_INVALID_ARGUMENT);
}

Test(simdev_config, devices_and_busy)
{
    cr_expect_eq(simdev_is_configured(), 0);
    cr_expect_eq(simdev_device_count(), 1);
    configure("devices:2,memory:64M");
    cr_expect_eq(simdev_is_configured(), 1);
    cr_expect_eq(simdev_device_count(), 2);

    simdev_t *d0, *d1, *dx;
    cr_assert_eq(simdev_open(0, &d0), VS_OK);
    cr_assert_eq(simdev_get(1, &d1), VS_OK);
    cr_expect_eq(simdev_get(2, &dx), VS_ERR_NO_DEVICE);
    cr_expect_eq(simdev_get(-1, &dx), VS_ERR_NO_DEVICE);
    cr_expect_eq(simdev_open(16, &dx), VS_ERR_NO_DEVICE);
    cr_expect_eq(simdev_ordinal(d1), 1);
    cr_expect_eq(simdev_ordinal((simdev_t *)&dx), -1);

    simdev_props p;
    cr_assert_eq(simdev_get_props(d1, &p), VS_OK);
    cr_expect_str_eq(p.name, "vramswap simulated GPU 1");
    cr_expect_eq(p.total_memory, 64 * MiB);
    cr_expect_eq(p.granularity, 64 * KiB);

    vs_sim_config c;
    simdev_get_config(&c);
    cr_expect_eq(simdev_configure(&c), VS_ERR_BUSY, "configure while a device is open");
    cr_assert_eq(simdev_close(d0), VS_OK);
    cr_expect_eq(simdev_close(d0), VS_ERR_INVALID_HANDLE, "close more than opened");

    /* A live object on a closed device also blocks reconfiguration. */
    uint64_t va;
    cr_assert_eq(simdev_va_reserve(d1, GRAN, 0, &va), VS_OK);
    cr_expect_eq(simdev_configure(&c), VS_ERR_BUSY);
    cr_assert_eq(simdev_va_free(d1, va, GRAN), VS_OK);
    configure("devices:1");
    cr_expect_eq(simdev_get(1, &dx), VS_ERR_NO_DEVICE);
    cr_expect_eq(simdev_va_reserve(d1, GRAN, 0, &va), VS_ERR_NO_DEVICE, "device no longer present");
    cr_expect_eq(simdev_get_props(NULL, &p), VS_ERR_INVALID_HANDLE);
}

/* ================================================================ memory */

Test(simdev_mem, reserve_map_access, .init = setup, .fini = teardown)
{
    uint64_t va;
    cr_assert_eq(simdev_va_reserve(dev, 4 * MiB, 2 * MiB, &va), VS_OK);
    cr_expect_eq(va % (2 * MiB), 0, "alignment honoured");

    simdev_handle ch;
    cr_assert_eq(simdev_phys_create(dev, 256 * KiB, &ch), VS_OK);
    cr_expect_eq(simdev_handle_ordinal(ch), 0);
    cr_assert_eq(simdev_map(dev, va + 256 * KiB, 256 * KiB, ch, 0), VS_OK);
    cr_expect_eq(simdev_check_access(dev, va + 256 * KiB, 16), VS_ERR_INVALID_ARGUMENT,
                 "a fresh mapping has no access");
    cr_assert_eq(simdev_set_access(dev, va + 256 * KiB, 256 * KiB, SIMDEV_ACCESS_RW), VS_OK);
    cr_expect_eq(simdev_check_access(dev, va + 256 * KiB, 256 * KiB), VS_OK);
    cr_expect_eq(simdev_check_access(dev, va, 16), VS_ERR_INVALID_ARGUMENT);

    uint8_t *p = (uint8_t *)(uintptr_t)(va + 256 * KiB);
    for (size_t i = 0; i < 256 * KiB; i++)
        cr_assert_eq(p[i], 0, "new chunks read as zeros");
    for (size_t i = 0; i < 256 * KiB; i++)
        p[i] = (uint8_t)(i * 7);

    vs_sim_counters c;
    simdev_get_counters(dev, &c);
    cr_expect_eq(c.reservations, 1);
    cr_expect_eq(c.reserved_bytes, 4 * MiB);
    cr_expect_eq(c.phys_chunks, 1);
    cr_expect_eq(c.phys_bytes, 256 * KiB);
    cr_expect_eq(c.mapped_bytes, 256 * KiB);
    cr_expect_eq(c.calls[VS_SIM_OP_MAP], 1);

    uint64_t base, size;
    int kind;
    cr_assert_eq(simdev_find_range(dev, va + 3 * MiB, &base, &size, &kind), VS_OK);
    cr_expect_eq(base, va);
    cr_expect_eq(size, 4 * MiB);
    cr_expect_eq(kind, SIMDEV_RANGE_RESERVED);

    /* The chunk keeps its contents when mapped elsewhere. */
    cr_assert_eq(simdev_unmap(dev, va + 256 * KiB, 256 * KiB), VS_OK);
    cr_assert_eq(simdev_map(dev, va + 3 * MiB, 256 * KiB, ch, 0), VS_OK);
    cr_assert_eq(simdev_set_access(dev, va + 3 * MiB, 256 * KiB, SIMDEV_ACCESS_RW), VS_OK);
    p = (uint8_t *)(uintptr_t)(va + 3 * MiB);
    for (size_t i = 0; i < 256 * KiB; i++)
        cr_assert_eq(p[i], (uint8_t)(i * 7));

    /* Part of a chunk, at an offset. */
    cr_assert_eq(simdev_map(dev, va, GRAN, ch, GRAN), VS_OK);
    cr_assert_eq(simdev_set_access(dev, va, GRAN, SIMDEV_ACCESS_RW), VS_OK);
    cr_expect_eq(((uint8_t *)(uintptr_t)va)[5], (uint8_t)((GRAN + 5) * 7));

    /* Releasing the handle while mapped keeps the memory until the unmap. */
    cr_assert_eq(simdev_phys_release(dev, ch), VS_OK);
    simdev_get_counters(dev, &c);
    cr_expect_eq(c.phys_chunks, 1);
    cr_expect_eq(p[1], 7);
    cr_expect_eq(simdev_map(dev, va + GRAN, GRAN, ch, 0), VS_ERR_INVALID_HANDLE);
    cr_assert_eq(simdev_unmap(dev, va + 3 * MiB, 256 * KiB), VS_OK);
    cr_assert_eq(simdev_unmap(dev, va, GRAN), VS_OK);
    simdev_get_counters(dev, &c);
    cr_expect_eq(c.phys_chunks, 0);
    cr_assert_eq(simdev_va_free(dev, va, 4 * MiB), VS_OK);
    expect_clean();
}

Test(simdev_mem, huge_reservations, .init = setup, .fini = teardown)
{
    /* Far more address space than memory is cheap (PyTorch reserves that way);
     * an impossible size is out of memory, not a crash. */
    uint64_t va, big = 1ull << 40;
    cr_assert_eq(simdev_va_reserve(dev, big, 0, &va), VS_OK, "%s", simdev_last_error());
    simdev_handle ch;
    cr_assert_eq(simdev_phys_create(dev, GRAN, &ch), VS_OK);
    cr_assert_eq(simdev_map(dev, va + big - GRAN, GRAN, ch, 0), VS_OK);
    cr_assert_eq(simdev_set_access(dev, va + big - GRAN, GRAN, SIMDEV_ACCESS_RW), VS_OK);
    touch_write(va + big - 1);
    cr_assert_eq(simdev_unmap(dev, va + big - GRAN, GRAN), VS_OK);
    cr_assert_eq(simdev_phys_release(dev, ch), VS_OK);
    cr_assert_eq(simdev_va_free(dev, va, big), VS_OK);
    cr_expect_eq(simdev_va_reserve(dev, 1ull << 60, 0, &va), VS_ERR_OUT_OF_MEMORY);
    cr_expect_eq(simdev_va_reserve(dev, UINT64_MAX - GRAN + 1, 0, &va), VS_ERR_OUT_OF_MEMORY);
    cr_expect_eq(simdev_malloc(dev, UINT64_MAX - 5, &va), VS_ERR_INVALID_ARGUMENT);
    expect_clean();
}

Test(simdev_mem, unmap_covers_several_mappings, .init = setup, .fini = teardown)
{
    uint64_t va;
    simdev_handle ch[3];
    cr_assert_eq(simdev_va_reserve(dev, 1 * MiB, 0, &va), VS_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(simdev_phys_create(dev, GRAN, &ch[i]), VS_OK);
        cr_assert_eq(simdev_map(dev, va + (uint64_t)(2 * i) * GRAN, GRAN, ch[i], 0), VS_OK);
        cr_assert_eq(simdev_phys_release(dev, ch[i]), VS_OK);
    }
    cr_expect_eq(simdev_set_access(dev, va, 3 * GRAN, SIMDEV_ACCESS_RW), VS_ERR_INVALID_ARGUMENT,
                 "hole in the range");
    cr_assert_eq(simdev_set_access(dev, va + 2 * GRAN, GRAN, SIMDEV_ACCESS_RW), VS_OK);
    /* One unmap with holes takes all three. */
    cr_assert_eq(simdev_unmap(dev, va, 6 * GRAN), VS_OK);
    cr_assert_eq(simdev_va_free(dev, va, 1 * MiB), VS_OK);
    expect_clean();
}

Test(simdev_mem, touching_unmapped_memory_faults, .init = setup, .fini = teardown)
{
    region r = make_region(1 * MiB, 256 * KiB);
    touch_write(r.va);
    cr_expect(!dies_of_fault(touch_write, r.va + 100), "mapped RW memory is writable");
    cr_expect(dies_of_fault(touch_read, r.va + 512 * KiB), "reserved, never mapped");

    cr_assert_eq(simdev_set_access(dev, r.va, 256 * KiB, SIMDEV_ACCESS_NONE), VS_OK);
    cr_expect(dies_of_fault(touch_read, r.va), "mapped without access");
    cr_assert_eq(simdev_set_access(dev, r.va, 256 * KiB, SIMDEV_ACCESS_RW), VS_OK);

    cr_assert_eq(simdev_unmap(dev, r.va, 256 * KiB), VS_OK);
    cr_expect(dies_of_fault(touch_write, r.va), "unmapped");
    cr_expect(dies_of_fault(touch_read, r.va + 128 * KiB), "unmapped");
    r.mapped = 0;
    cr_assert_eq(simdev_phys_release(dev, r.chunk), VS_OK);
    drop_region(&r);
    expect_clean();
}

Test(simdev_mem, out_of_memory, .init = setup, .fini = teardown)
{
    simdev_handle ch[4], extra;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(simdev_phys_create(dev, 16 * MiB, &ch[i]), VS_OK);
    uint64_t free_b, total;
    cr_assert_eq(simdev_mem_info(dev, &free_b, &total), VS_OK);
    cr_expect_eq(free_b, 0);
    cr_expect_eq(total, 64 * MiB);
    cr_expect_eq(simdev_phys_create(dev, GRAN, &extra), VS_ERR_OUT_OF_MEMORY);
    uint64_t ptr;
    cr_expect_eq(simdev_malloc(dev, 1, &ptr), VS_ERR_OUT_OF_MEMORY);
    cr_expect_eq(simdev_set_external_usage(dev, 1), VS_ERR_OUT_OF_MEMORY);

    cr_assert_eq(simdev_phys_release(dev, ch[3]), VS_OK);
    cr_assert_eq(simdev_set_external_usage(dev, 8 * MiB), VS_OK);
    cr_assert_eq(simdev_malloc(dev, 100, &ptr), VS_OK);  /* accounted as one granule */
    cr_assert_eq(simdev_mem_info(dev, &free_b, NULL), VS_OK);
    cr_expect_eq(free_b, 8 * MiB - GRAN);
    vs_sim_counters c;
    simdev_get_counters(dev, &c);
    cr_expect_eq(c.external_bytes, 8 * MiB + GRAN);
    cr_expect_eq(simdev_phys_create(dev, 8 * MiB, &extra), VS_ERR_OUT_OF_MEMORY);
    cr_assert_eq(simdev_phys_create(dev, 8 * MiB - GRAN, &extra), VS_OK);
    cr_expect_eq(simdev_phys_create(dev, GRAN, &ch[3]), VS_ERR_OUT_OF_MEMORY);

    /* The allocation is usable device memory. */
    memset((void *)(uintptr_t)ptr, 0xab, 100);
    int kind;
    uint64_t size;
    cr_assert_eq(simdev_find_range(dev, ptr + 50, NULL, &size, &kind), VS_OK);
    cr_expect_eq(kind, SIMDEV_RANGE_ALLOCATION);
    cr_expect_eq(size, 100);

    cr_assert_eq(simdev_free(dev, ptr), VS_OK);
    cr_expect_eq(simdev_free(dev, ptr), VS_ERR_INVALID_ARGUMENT, "double free");
    cr_assert_eq(simdev_set_external_usage(dev, 0), VS_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(simdev_phys_release(dev, ch[i]), VS_OK);
    cr_assert_eq(simdev_phys_release(dev, extra), VS_OK);
    expect_clean();

    /* Reuse after fragmentation of the memory file. */
    simdev_handle many[64];
    for (int i = 0; i < 64; i++)
        cr_assert_eq(simdev_phys_create(dev, 1 * MiB, &many[i]), VS_OK);
    for (int i = 0; i < 64; i += 2)
        cr_assert_eq(simdev_phys_release(dev, many[i]), VS_OK);
    cr_assert_eq(simdev_phys_create(dev, 32 * MiB, &extra), VS_OK);
    cr_expect_eq(simdev_phys_create(dev, GRAN, &ch[0]), VS_ERR_OUT_OF_MEMORY);
    cr_assert_eq(simdev_phys_release(dev, extra), VS_OK);
    for (int i = 1; i < 64; i += 2)
        cr_assert_eq(simdev_phys_release(dev, many[i]), VS_OK);
    expect_clean();
}

Test(simdev_mem, validation, .init = setup, .fini = teardown)
{
    uint64_t va, va2;
    simdev_handle ch, ch2, s;
    cr_assert_eq(simdev_va_reserve(dev, 1 * MiB, 0, &va), VS_OK);
    cr_expect_eq(simdev_va_reserve(dev, GRAN + 4096, 0, &va2), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_va_reserve(dev, 0, 0, &va2), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_va_reserve(dev, GRAN, 4096, &va2), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_va_reserve(dev, GRAN, 0, NULL), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_phys_create(dev, 4096, &ch), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_phys_create(dev, GRAN, NULL), VS_ERR_INVALID_ARGUMENT);
    cr_assert_eq(simdev_phys_create(dev, 2 * GRAN, &ch), VS_OK);
    cr_assert_eq(simdev_stream_create(dev, &s), VS_OK);

    /* Handles: wrong kind, wrong device, made up, stale. */
    cr_expect_eq(simdev_map(dev, va, 2 * GRAN, s, 0), VS_ERR_INVALID_HANDLE);
    cr_expect_eq(simdev_map(dev, va, 2 * GRAN, 0x1234, 0), VS_ERR_INVALID_HANDLE);
    cr_expect_eq(simdev_map(dev, va, 2 * GRAN, ch ^ (1ull << 56), 0), VS_ERR_INVALID_HANDLE);
    cr_expect_eq(simdev_phys_release(dev, s), VS_ERR_INVALID_HANDLE);
    cr_expect_eq(simdev_stream_destroy(dev, ch), VS_ERR_INVALID_HANDLE);
    cr_expect_eq(simdev_stream_destroy(dev, 0), VS_ERR_INVALID_HANDLE, "default stream");
    cr_expect_eq(simdev_event_query(dev, s), VS_ERR_INVALID_HANDLE);

    /* Bad ranges. */
    cr_expect_eq(simdev_map(dev, va + 4096, 2 * GRAN, ch, 0), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_map(dev, va, 3 * GRAN, ch, 0), VS_ERR_INVALID_ARGUMENT, "beyond chunk");
    cr_expect_eq(simdev_map(dev, va, 2 * GRAN, ch, GRAN), VS_ERR_INVALID_ARGUMENT, "beyond chunk");
    cr_expect_eq(simdev_map(dev, va + 1 * MiB - GRAN, 2 * GRAN, ch, 0), VS_ERR_INVALID_ARGUMENT,
                 "beyond the reservation");
    cr_expect_eq(simdev_map(dev, 0x1000000, 2 * GRAN, ch, 0), VS_ERR_INVALID_ARGUMENT,
                 "not reserved");
    cr_expect_eq(simdev_unmap(dev, va, GRAN), VS_ERR_INVALID_ARGUMENT, "nothing mapped");
    cr_expect_eq(simdev_set_access(dev, va, GRAN, SIMDEV_ACCESS_RW), VS_ERR_INVALID_ARGUMENT);

    cr_assert_eq(simdev_map(dev, va, 2 * GRAN, ch, 0), VS_OK);
    cr_expect_eq(simdev_map(dev, va + GRAN, 2 * GRAN, ch, 0), VS_ERR_INVALID_ARGUMENT, "overlap");
    cr_expect_eq(simdev_set_access(dev, va, 2 * GRAN, 1), VS_ERR_INVALID_ARGUMENT, "bad access");
    cr_expect_eq(simdev_unmap(dev, va, GRAN), VS_ERR_INVALID_ARGUMENT, "half a mapping");
    cr_expect_eq(simdev_va_free(dev, va, 1 * MiB), VS_ERR_BUSY, "live mapping");
    cr_expect_eq(simdev_va_free(dev, va, 2 * MiB), VS_ERR_INVALID_ARGUMENT, "wrong size");
    cr_expect_eq(simdev_va_free(dev, va + GRAN, 1 * MiB - GRAN), VS_ERR_INVALID_ARGUMENT);

    /* Copies need mapped, accessible device memory. */
    uint8_t host[256];
    cr_expect_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, va, (uintptr_t)host, 16, 0),
                 VS_ERR_INVALID_ARGUMENT, "mapped without access");
    cr_assert_eq(simdev_set_access(dev, va, 2 * GRAN, SIMDEV_ACCESS_RW), VS_OK);
    cr_expect_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, va + 2 * GRAN - 8,
                                   (uintptr_t)host, 16, 0), VS_ERR_INVALID_ARGUMENT, "runs off");
    cr_expect_eq(simdev_copy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)host, va + 4 * GRAN, 16,
                                   0), VS_ERR_INVALID_ARGUMENT, "unmapped source");
    cr_expect_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)host, va, 16, 0),
                 VS_ERR_INVALID_ARGUMENT, "host pointer as device destination");
    cr_expect_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, va, va + 4 * GRAN, 16, 0),
                 VS_ERR_INVALID_ARGUMENT, "host side inside unmapped device memory");
    cr_expect_eq(simdev_copy_async(dev, 7, va, (uintptr_t)host, 16, 0), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, va, (uintptr_t)host, 16, ch),
                 VS_ERR_INVALID_HANDLE);
    cr_expect_eq(simdev_memset_async(dev, va + 4 * GRAN, 0, 16, 0), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, va, (uintptr_t)host, 0, 0), VS_OK,
                 "empty copy");
    cr_expect_eq(simdev_launch_host_fn(dev, 0, NULL, NULL), VS_ERR_INVALID_ARGUMENT);

    /* Host registration. */
    void *h = mmap(NULL, 64 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(h, MAP_FAILED);
    cr_assert_eq(simdev_host_register(dev, h, 32 * KiB), VS_OK);
    cr_expect_eq(simdev_host_register(dev, h, 32 * KiB), VS_ERR_BUSY, "twice");
    cr_expect_eq(simdev_host_register(dev, (char *)h + 16 * KiB, 32 * KiB), VS_ERR_BUSY, "overlap");
    cr_expect_eq(simdev_host_register(dev, NULL, 4096), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_host_register(dev, h, 0), VS_ERR_INVALID_ARGUMENT);
    cr_assert_eq(simdev_host_register(dev, (char *)h + 32 * KiB, 32 * KiB), VS_OK, "adjacent");
    cr_expect_eq(simdev_host_is_registered(dev, (char *)h + 4096, 4096), VS_OK);
    cr_expect_eq(simdev_host_is_registered(dev, (char *)h + 30 * KiB, 4 * KiB),
                 VS_ERR_INVALID_ARGUMENT, "spans two registrations");
    cr_expect_eq(simdev_host_unregister(dev, (char *)h + 4096), VS_ERR_INVALID_ARGUMENT);
    cr_assert_eq(simdev_host_unregister(dev, h), VS_OK);
    cr_expect_eq(simdev_host_unregister(dev, h), VS_ERR_INVALID_ARGUMENT, "twice");
    cr_assert_eq(simdev_host_unregister(dev, (char *)h + 32 * KiB), VS_OK);
    munmap(h, 64 * KiB);

    /* Allocations. */
    uint64_t ptr;
    cr_expect_eq(simdev_malloc(dev, 0, &ptr), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_free(dev, va), VS_ERR_INVALID_ARGUMENT, "a reservation is not an allocation");
    cr_assert_eq(simdev_malloc(dev, 3 * GRAN, &ptr), VS_OK);
    cr_expect_eq(simdev_free(dev, ptr + 8), VS_ERR_INVALID_ARGUMENT, "interior pointer");
    cr_expect_eq(simdev_map(dev, ptr, GRAN, ch, 0), VS_ERR_INVALID_ARGUMENT, "map into an allocation");
    cr_assert_eq(simdev_free(dev, ptr), VS_OK);

    /* Stale handles after release. */
    cr_assert_eq(simdev_unmap(dev, va, 2 * GRAN), VS_OK);
    cr_assert_eq(simdev_phys_release(dev, ch), VS_OK);
    cr_expect_eq(simdev_phys_release(dev, ch), VS_ERR_INVALID_HANDLE, "double release");
    cr_assert_eq(simdev_phys_create(dev, 2 * GRAN, &ch2), VS_OK);
    cr_expect_neq(ch, ch2, "a reused slot gets a new generation");
    cr_expect_eq(simdev_map(dev, va, 2 * GRAN, ch, 0), VS_ERR_INVALID_HANDLE);
    cr_assert_eq(simdev_phys_release(dev, ch2), VS_OK);
    cr_assert_eq(simdev_stream_destroy(dev, s), VS_OK);
    cr_expect_eq(simdev_stream_destroy(dev, s), VS_ERR_INVALID_HANDLE);
    cr_expect_eq(simdev_stream_synchronize(dev, s), VS_ERR_INVALID_HANDLE);
    cr_assert_eq(simdev_va_free(dev, va, 1 * MiB), VS_OK);
    cr_expect_eq(simdev_va_free(dev, va, 1 * MiB), VS_ERR_INVALID_ARGUMENT, "double free");
    cr_expect_eq(simdev_stream_synchronize(dev, 0), VS_OK);
    expect_clean();
}

/* ================================================================ streams and copies */

Test(simdev_stream, copies_keep_stream_order, .init = setup, .fini = teardown)
{
    enum { N = 400, SPAN = 512 * 1024 };
    region r = make_region(1 * MiB, 1 * MiB);
    uint8_t *model = calloc(1, SPAN);
    uint8_t *out = calloc(1, SPAN);
    uint8_t **srcs = calloc(N, sizeof *srcs);
    unsigned seed = 12345;
    simdev_handle s;
    cr_assert_eq(simdev_stream_create(dev, &s), VS_OK);

    /* Overlapping writes: the result is only right if they ran in order. */
    for (int i = 0; i < N; i++) {
        uint64_t off = (uint64_t)rand_r(&seed) % (SPAN - 1);
        uint64_t len = 1 + (uint64_t)rand_r(&seed) % (SPAN - off < 65536 ? SPAN - off : 65536);
        srcs[i] = malloc(len);
        fill_random(srcs[i], len, &seed);
        if (i % 7 == 3) {
            uint8_t v = (uint8_t)rand_r(&seed);
            cr_assert_eq(simdev_memset_async(dev, r.va + off, v, len, s), VS_OK);
            memset(model + off, v, len);
        } else if (i % 5 == 2 && off + 2 * len <= SPAN) {
            cr_assert_eq(simdev_copy_async(dev, VS_COPY_DEVICE_TO_DEVICE, r.va + off + len,
                                           r.va + off, len, s), VS_OK);
            memmove(model + off + len, model + off, len);
        } else {
            cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, r.va + off,
                                           (uintptr_t)srcs[i], len, s), VS_OK);
            memcpy(model + off, srcs[i], len);
        }
    }
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)out, r.va, SPAN, s),
                 VS_OK);
    cr_assert_eq(simdev_stream_synchronize(dev, s), VS_OK);
    cr_expect_eq(simdev_stream_query(dev, s), VS_OK);
    for (size_t i = 0; i < SPAN; i++)
        cr_assert_eq(out[i], model[i], "byte %zu differs", i);

    vs_sim_counters c;
    simdev_get_counters(dev, &c);
    cr_expect_gt(c.copies, N / 2);
    cr_expect_gt(c.bytes_copied, SPAN);

    for (int i = 0; i < N; i++)
        free(srcs[i]);
    free(srcs);
    free(model);
    free(out);
    cr_assert_eq(simdev_stream_destroy(dev, s), VS_OK);
    drop_region(&r);
    expect_clean();
}

Test(simdev_stream, events_across_streams, .init = setup, .fini = teardown)
{
    region r = make_region(1 * MiB, 1 * MiB);
    simdev_handle a, b, e, never;
    cr_assert_eq(simdev_stream_create(dev, &a), VS_OK);
    cr_assert_eq(simdev_stream_create(dev, &b), VS_OK);
    cr_assert_eq(simdev_event_create(dev, &e), VS_OK);
    cr_assert_eq(simdev_event_create(dev, &never), VS_OK);
    cr_expect_eq(simdev_event_query(dev, never), VS_OK, "never recorded = complete");
    cr_expect_eq(simdev_event_synchronize(dev, never), VS_OK);
    cr_expect_eq(simdev_stream_wait_event(dev, b, never), VS_OK);

    static uint8_t src[64 * 1024], out[64 * 1024];
    unsigned seed = 99;
    fill_random(src, sizeof src, &seed);
    gate g;
    gate_init(&g);

    /* A: [blocked] H2D src -> va; record e.  B: wait e; D2D va -> va+512K; D2H. */
    cr_assert_eq(simdev_launch_host_fn(dev, a, gate_wait, &g), VS_OK);
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, r.va, (uintptr_t)src, sizeof src, a),
                 VS_OK);
    cr_assert_eq(simdev_event_record(dev, e, a), VS_OK);
    cr_assert_eq(simdev_stream_wait_event(dev, b, e), VS_OK);
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_DEVICE_TO_DEVICE, r.va + 512 * KiB, r.va,
                                   sizeof src, b), VS_OK);
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)out, r.va + 512 * KiB,
                                   sizeof out, b), VS_OK);
    /* Re-recording e now must not release B's wait, which holds the old point. */
    sleep_ms(30);
    cr_expect_eq(simdev_event_query(dev, e), VS_ERR_NOT_READY);
    cr_expect_eq(simdev_stream_query(dev, a), VS_ERR_NOT_READY);
    cr_expect_eq(simdev_stream_query(dev, b), VS_ERR_NOT_READY);
    cr_expect_eq(atomic_load(&g.entered), 1);

    /* The default stream is independent of A and B. */
    simdev_handle e0;
    cr_assert_eq(simdev_event_create(dev, &e0), VS_OK);
    cr_assert_eq(simdev_memset_async(dev, r.va + 256 * KiB, 5, 16, 0), VS_OK);
    cr_assert_eq(simdev_event_record(dev, e0, 0), VS_OK);
    cr_assert_eq(simdev_event_synchronize(dev, e0), VS_OK);
    cr_expect_eq(((uint8_t *)(uintptr_t)r.va)[256 * KiB], 5);

    cr_assert_eq(simdev_event_record(dev, e, 0), VS_OK);  /* re-record on an idle stream */
    cr_expect_eq(simdev_event_query(dev, e), VS_OK, "re-recording moves the event");
    sleep_ms(20);
    cr_expect_eq(simdev_stream_query(dev, b), VS_ERR_NOT_READY, "B still waits for A");
    uint64_t ns;
    cr_expect_eq(simdev_event_elapsed_ns(dev, e0, e, &ns), VS_OK);
    cr_expect_eq(simdev_event_elapsed_ns(dev, e0, never, &ns), VS_ERR_INVALID_ARGUMENT);

    gate_open(&g);
    cr_assert_eq(simdev_stream_synchronize(dev, b), VS_OK);
    cr_expect_eq(simdev_stream_query(dev, a), VS_OK, "B finished after A");
    cr_expect_eq(memcmp(out, src, sizeof src), 0, "B saw A's data");

    /* event_synchronize on a pending event; elapsed time between markers. */
    simdev_handle t0, t1;
    gate g2;
    gate_init(&g2);
    cr_assert_eq(simdev_event_create(dev, &t0), VS_OK);
    cr_assert_eq(simdev_event_create(dev, &t1), VS_OK);
    cr_assert_eq(simdev_launch_host_fn(dev, a, gate_wait, &g2), VS_OK);
    cr_assert_eq(simdev_event_record(dev, t0, a), VS_OK);
    cr_expect_eq(simdev_event_elapsed_ns(dev, t0, t0, &ns), VS_ERR_NOT_READY);
    cr_assert_eq(simdev_launch_host_fn(dev, a, sleep_5ms, NULL), VS_OK);
    cr_assert_eq(simdev_event_record(dev, t1, a), VS_OK);
    gate_open(&g2);
    cr_assert_eq(simdev_event_synchronize(dev, t1), VS_OK);
    cr_expect_eq(simdev_event_query(dev, t0), VS_OK);
    cr_assert_eq(simdev_event_elapsed_ns(dev, t0, t1, &ns), VS_OK);
    cr_expect_geq(ns, 4000000, "elapsed %llu ns", (unsigned long long)ns);

    /* Destroying a stream with pending work waits for it; its events complete. */
    gate g3;
    gate_init(&g3);
    cr_assert_eq(simdev_launch_host_fn(dev, a, gate_wait, &g3), VS_OK);
    cr_assert_eq(simdev_event_record(dev, e, a), VS_OK);
    cr_expect_eq(simdev_event_query(dev, e), VS_ERR_NOT_READY);
    gate_open(&g3);
    cr_assert_eq(simdev_stream_destroy(dev, a), VS_OK);
    cr_expect_eq(simdev_event_query(dev, e), VS_OK);

    /* Events of another device are refused. */
    simdev_t *d1;
    simdev_handle e1;
    cr_assert_eq(simdev_open(1, &d1), VS_OK);
    cr_assert_eq(simdev_event_create(d1, &e1), VS_OK);
    cr_expect_eq(simdev_handle_ordinal(e1), 1);
    cr_expect_eq(simdev_stream_wait_event(dev, b, e1), VS_ERR_INVALID_HANDLE);
    cr_expect_eq(simdev_event_record(dev, e1, b), VS_ERR_INVALID_HANDLE);
    cr_assert_eq(simdev_event_destroy(d1, e1), VS_OK);
    cr_assert_eq(simdev_close(d1), VS_OK);

    for (simdev_handle *ev = (simdev_handle[]){e, never, e0, t0, t1}, *end = ev + 5; ev < end; ev++)
        cr_assert_eq(simdev_event_destroy(dev, *ev), VS_OK);
    cr_expect_eq(simdev_event_destroy(dev, e), VS_ERR_INVALID_HANDLE);
    cr_assert_eq(simdev_stream_destroy(dev, b), VS_OK);
    drop_region(&r);
    expect_clean();
    expect_clean_dev(d1);
}

Test(simdev_stream, copy_to_memory_unmapped_while_queued, .init = setup, .fini = teardown)
{
    region r = make_region(1 * MiB, 256 * KiB);
    static uint8_t src[4096];
    gate g;
    gate_init(&g);
    simdev_handle s;
    cr_assert_eq(simdev_stream_create(dev, &s), VS_OK);
    cr_assert_eq(simdev_launch_host_fn(dev, s, gate_wait, &g), VS_OK);
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, r.va, (uintptr_t)src, sizeof src, s),
                 VS_OK);
    /* The memory goes away before the copy runs: the worker must not fault. */
    cr_assert_eq(simdev_unmap(dev, r.va, r.mapped), VS_OK);
    gate_open(&g);
    cr_expect_eq(simdev_stream_synchronize(dev, s), VS_ERR_INVALID_ARGUMENT, "async error reported");
    cr_expect_eq(simdev_stream_synchronize(dev, s), VS_OK, "and cleared");

    /* The stream still works. */
    cr_assert_eq(simdev_map(dev, r.va, r.mapped, r.chunk, 0), VS_OK);
    cr_assert_eq(simdev_set_access(dev, r.va, r.mapped, SIMDEV_ACCESS_RW), VS_OK);
    memset(src, 0x5a, sizeof src);
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, r.va, (uintptr_t)src, sizeof src, s),
                 VS_OK);
    cr_assert_eq(simdev_synchronize(dev), VS_OK);
    cr_expect_eq(((uint8_t *)(uintptr_t)r.va)[4095], 0x5a);
    cr_assert_eq(simdev_stream_destroy(dev, s), VS_OK);
    drop_region(&r);
    expect_clean();
}

typedef struct free_call {
    uint64_t ptr;
    vs_status st;
    atomic_int done;
} free_call;

static void *free_in_thread(void *arg)
{
    free_call *f = arg;
    f->st = simdev_free(dev, f->ptr);
    atomic_store(&f->done, 1);
    return NULL;
}

Test(simdev_stream, free_waits_for_queued_copies, .init = setup, .fini = teardown)
{
    static uint8_t src[4096];
    memset(src, 3, sizeof src);
    free_call f = {0, VS_ERR_INTERNAL, 0};
    cr_assert_eq(simdev_malloc(dev, sizeof src, &f.ptr), VS_OK);
    gate g;
    gate_init(&g);
    simdev_handle s;
    cr_assert_eq(simdev_stream_create(dev, &s), VS_OK);
    cr_assert_eq(simdev_launch_host_fn(dev, s, gate_wait, &g), VS_OK);
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, f.ptr, (uintptr_t)src, sizeof src, s),
                 VS_OK);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_in_thread, &f), 0);
    sleep_ms(30);
    cr_expect_eq(atomic_load(&f.done), 0, "free must wait for the queued copy");
    gate_open(&g);
    pthread_join(t, NULL);
    cr_expect_eq(f.st, VS_OK);
    cr_expect_eq(simdev_stream_synchronize(dev, s), VS_OK, "the copy ran before the free");
    cr_expect_eq(simdev_handle_ordinal(0), -1);
    cr_expect_eq(simdev_handle_ordinal(s), 0);
    cr_assert_eq(simdev_stream_destroy(dev, s), VS_OK);
    expect_clean();
}

Test(simdev_stream, throttled_copies_and_unmap_waits, .timeout = 20)
{
    configure("memory:256M,bandwidth:256M");
    cr_assert_eq(simdev_open(0, &dev), VS_OK);
    region r = make_region(32 * MiB, 32 * MiB);
    uint8_t *host = aligned_alloc(4096, 16 * MiB);
    memset(host, 0x11, 16 * MiB);
    cr_assert_eq(simdev_host_register(dev, host, 16 * MiB), VS_OK);

    /* 16 MiB pinned at 256 MiB/s: about 62 ms. */
    double t = now_s();
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, r.va, (uintptr_t)host, 16 * MiB, 0),
                 VS_OK);
    cr_assert_eq(simdev_stream_synchronize(dev, 0), VS_OK);
    double pinned = now_s() - t;
    cr_expect_geq(pinned, 0.055, "pinned copy took %.3f s", pinned);
    cr_assert_eq(simdev_host_unregister(dev, host), VS_OK);

    /* Pageable: four times slower. */
    t = now_s();
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, r.va, (uintptr_t)host, 4 * MiB, 0),
                 VS_OK);
    cr_assert_eq(simdev_stream_synchronize(dev, 0), VS_OK);
    double pageable = now_s() - t;
    cr_expect_geq(pageable, 0.055, "pageable 4 MiB took %.3f s", pageable);

    /* Unmapping memory while a copy runs on it waits for the copy. */
    memset((void *)(uintptr_t)r.va, 0x22, 16 * MiB);
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)host, r.va, 4 * MiB, 0),
                 VS_OK);
    sleep_ms(10);
    cr_assert_eq(simdev_unmap(dev, r.va, r.mapped), VS_OK);
    cr_assert_eq(simdev_stream_synchronize(dev, 0), VS_OK, "the running copy completed");
    for (size_t i = 0; i < 4 * MiB; i += 4093)
        cr_assert_eq(host[i], 0x22);
    r.mapped = 0;
    cr_assert_eq(simdev_phys_release(dev, r.chunk), VS_OK);
    drop_region(&r);
    free(host);
    expect_clean();
    simdev_close(dev);
}

/* ================================================================ injection */

Test(simdev_inject, skip_then_count, .init = setup, .fini = teardown)
{
    simdev_handle ch[4];
    cr_assert_eq(simdev_inject(dev, VS_SIM_OP_PHYS_CREATE, 2, 1, VS_ERR_OUT_OF_MEMORY), VS_OK);
    cr_assert_eq(simdev_phys_create(dev, GRAN, &ch[0]), VS_OK);
    cr_assert_eq(simdev_phys_create(dev, GRAN, &ch[1]), VS_OK);
    cr_expect_eq(simdev_phys_create(dev, GRAN, &ch[2]), VS_ERR_OUT_OF_MEMORY);
    cr_expect_str_neq(simdev_last_error(), "");
    cr_assert_eq(simdev_phys_create(dev, GRAN, &ch[2]), VS_OK, "count exhausted");
    /* Invalid calls do not consume injections. */
    cr_assert_eq(simdev_inject(dev, VS_SIM_OP_PHYS_CREATE, 0, 1, VS_ERR_BACKEND), VS_OK);
    cr_expect_eq(simdev_phys_create(dev, 4096, &ch[3]), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_phys_create(dev, GRAN, &ch[3]), VS_ERR_BACKEND);
    cr_assert_eq(simdev_phys_create(dev, GRAN, &ch[3]), VS_OK);

    vs_sim_counters c;
    simdev_get_counters(dev, &c);
    cr_expect_eq(c.injected_failures, 2);
    cr_expect_eq(c.phys_chunks, 4, "failed calls created nothing");
    cr_expect_eq(c.calls[VS_SIM_OP_PHYS_CREATE], 7);

    /* Transient NOT_READY on map and set_access leaves nothing behind. */
    uint64_t va;
    cr_assert_eq(simdev_va_reserve(dev, 1 * MiB, 0, &va), VS_OK);
    cr_assert_eq(simdev_inject(dev, VS_SIM_OP_MAP, 0, 2, VS_ERR_NOT_READY), VS_OK);
    cr_expect_eq(simdev_map(dev, va, GRAN, ch[0], 0), VS_ERR_NOT_READY);
    cr_expect_eq(simdev_map(dev, va, GRAN, ch[0], 0), VS_ERR_NOT_READY);
    simdev_get_counters(dev, &c);
    cr_expect_eq(c.mapped_bytes, 0);
    cr_assert_eq(simdev_map(dev, va, GRAN, ch[0], 0), VS_OK);
    cr_assert_eq(simdev_inject(dev, VS_SIM_OP_SET_ACCESS, 1, 1, VS_ERR_NOT_READY), VS_OK);
    cr_assert_eq(simdev_set_access(dev, va, GRAN, SIMDEV_ACCESS_RW), VS_OK);
    cr_expect_eq(simdev_set_access(dev, va, GRAN, SIMDEV_ACCESS_NONE), VS_ERR_NOT_READY);
    cr_expect_eq(simdev_check_access(dev, va, GRAN), VS_OK, "failed set_access changed nothing");

    /* count 0 disarms; clear disarms everything. */
    cr_assert_eq(simdev_inject(dev, VS_SIM_OP_UNMAP, 0, 5, VS_ERR_BACKEND), VS_OK);
    cr_assert_eq(simdev_inject(dev, VS_SIM_OP_UNMAP, 0, 0, VS_OK), VS_OK);
    cr_assert_eq(simdev_inject(dev, VS_SIM_OP_VA_FREE, 0, 5, VS_ERR_BACKEND), VS_OK);
    cr_assert_eq(simdev_inject(dev, VS_SIM_OP_PHYS_RELEASE, 0, 5, VS_ERR_BACKEND), VS_OK);
    cr_expect_eq(simdev_phys_release(dev, ch[1]), VS_ERR_BACKEND);
    cr_assert_eq(simdev_inject_clear(dev), VS_OK);
    cr_assert_eq(simdev_unmap(dev, va, GRAN), VS_OK);
    cr_assert_eq(simdev_va_free(dev, va, 1 * MiB), VS_OK);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(simdev_phys_release(dev, ch[i]), VS_OK);

    /* Bad injection requests. */
    cr_expect_eq(simdev_inject(dev, VS_SIM_OP_COUNT_, 0, 1, VS_ERR_BACKEND), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_inject(dev, -1, 0, 1, VS_ERR_BACKEND), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_inject(dev, VS_SIM_OP_MAP, 0, 1, VS_OK), VS_ERR_INVALID_ARGUMENT);
    cr_expect_eq(simdev_inject(dev, VS_SIM_OP_MAP, 0, 1, (vs_status)99), VS_ERR_INVALID_ARGUMENT);

    /* Every injectable op. */
    simdev_handle h;
    uint64_t p, f;
    static uint8_t buf[4096];
    for (int op = 0; op < VS_SIM_OP_COUNT_; op++)
        cr_assert_eq(simdev_inject(dev, op, 0, 1, VS_ERR_BACKEND), VS_OK);
    cr_expect_eq(simdev_va_reserve(dev, GRAN, 0, &va), VS_ERR_BACKEND);
    cr_expect_eq(simdev_phys_create(dev, GRAN, &h), VS_ERR_BACKEND);
    cr_expect_eq(simdev_host_register(dev, buf, sizeof buf), VS_ERR_BACKEND);
    cr_expect_eq(simdev_mem_info(dev, &f, NULL), VS_ERR_BACKEND);
    cr_expect_eq(simdev_stream_create(dev, &h), VS_ERR_BACKEND);
    cr_expect_eq(simdev_event_create(dev, &h), VS_ERR_BACKEND);
    cr_expect_eq(simdev_malloc(dev, 16, &p), VS_ERR_BACKEND);
    cr_assert_eq(simdev_malloc(dev, 16, &p), VS_OK);
    cr_expect_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, p, (uintptr_t)buf, 16, 0),
                 VS_ERR_BACKEND);
    cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, p, (uintptr_t)buf, 16, 0), VS_OK);
    cr_assert_eq(simdev_synchronize(dev), VS_OK);
    cr_assert_eq(simdev_free(dev, p), VS_OK);
    cr_assert_eq(simdev_inject_clear(dev), VS_OK);
    simdev_get_counters(dev, &c);
    cr_expect_eq(c.injected_failures, 2 + 2 + 1 + 1 + 8);
    cr_assert_eq(simdev_reset_totals(dev), VS_OK);
    simdev_get_counters(dev, &c);
    cr_expect_eq(c.injected_failures, 0);
    cr_expect_eq(c.calls[VS_SIM_OP_MAP], 0);
    expect_clean();
}

/* ================================================================ threads */

typedef struct worker_arg {
    int id;
    int failures;
} worker_arg;

/* Each thread maps, fills, copies out and unmaps its own pages, repeatedly,
 * on its own stream, while the others do the same. */
static void *hammer(void *p)
{
    worker_arg *w = p;
    simdev_handle s, e;
    uint64_t va;
    uint8_t *out = malloc(256 * KiB);
    unsigned seed = (unsigned)w->id * 7919u;
    if (simdev_stream_create(dev, &s) || simdev_event_create(dev, &e) ||
        simdev_va_reserve(dev, 1 * MiB, 0, &va)) {
        w->failures++;
        return NULL;
    }
    for (int it = 0; it < 60; it++) {
        simdev_handle ch;
        uint64_t off = (uint64_t)(rand_r(&seed) % 4) * 256 * KiB;
        uint8_t v = (uint8_t)rand_r(&seed);
        vs_status st = simdev_phys_create(dev, 256 * KiB, &ch);
        if (st == VS_ERR_OUT_OF_MEMORY)
            continue;
        if (st || simdev_map(dev, va + off, 256 * KiB, ch, 0) ||
            simdev_set_access(dev, va + off, 256 * KiB, SIMDEV_ACCESS_RW) ||
            simdev_memset_async(dev, va + off, v, 256 * KiB, s) ||
            simdev_copy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)out, va + off, 256 * KiB, s) ||
            simdev_event_record(dev, e, s) || simdev_event_synchronize(dev, e) ||
            simdev_unmap(dev, va + off, 256 * KiB) || simdev_phys_release(dev, ch)) {
            w->failures++;
            break;
        }
        for (size_t i = 0; i < 256 * KiB; i += 511)
            if (out[i] != v) {
                w->failures++;
                break;
            }
    }
    if (simdev_stream_destroy(dev, s) || simdev_event_destroy(dev, e) ||
        simdev_va_free(dev, va, 1 * MiB))
        w->failures++;
    free(out);
    return NULL;
}

Test(simdev_threads, concurrent_map_copy_unmap, .init = setup, .fini = teardown, .timeout = 60)
{
    enum { T = 6 };
    pthread_t th[T];
    worker_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (worker_arg){i, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(args[i].failures, 0, "thread %d", i);
    }
    expect_clean();
}

Test(simdev_threads, close_drains_and_reopen_restarts, .init = setup)
{
    region r = make_region(1 * MiB, 1 * MiB);
    static uint8_t src[256 * 1024];
    memset(src, 0x77, sizeof src);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(simdev_copy_async(dev, VS_COPY_HOST_TO_DEVICE, r.va + (uint64_t)i * sizeof src,
                                       (uintptr_t)src, sizeof src, 0), VS_OK);
    cr_assert_eq(simdev_close(dev), VS_OK);  /* drains and joins */
    cr_expect_eq(((uint8_t *)(uintptr_t)r.va)[1 * MiB - 1], 0x77);
    cr_expect_eq(simdev_stream_query(dev, 0), VS_OK);
    /* Still usable: the worker restarts on demand. */
    cr_assert_eq(simdev_open(0, &dev), VS_OK);
    cr_assert_eq(simdev_memset_async(dev, r.va, 1, 16, 0), VS_OK);
    cr_assert_eq(simdev_synchronize(dev), VS_OK);
    cr_expect_eq(((uint8_t *)(uintptr_t)r.va)[15], 1);
    drop_region(&r);
    expect_clean();
    cr_assert_eq(simdev_close(dev), VS_OK);
    vs_sim_config c;
    simdev_get_config(&c);
    cr_expect_eq(simdev_configure(&c), VS_OK, "idle again: reconfigurable");
}
