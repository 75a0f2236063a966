/* Handle pools.
 *
 * Note [Handles]
 * ~~~~~~~~~~~~~~
 * Every public function validates its handle and must answer
 * VS_ERR_INVALID_HANDLE -- not crash -- for NULL, for a pointer that was never a
 * handle, and for a handle that was destroyed. So objects handed out as handles
 * (devices, VBARs, scratch and host buffers) live in slots of chunks that are
 * never returned to the system:
 *  - a pointer is a handle only if it points at the start of a slot of one of our
 *    chunks (checked lock-free against the chunk list, without dereferencing);
 *  - a live slot carries VS_MAGIC_ALIVE and its kind; destroying writes
 *    VS_MAGIC_DEAD, so a stale pointer reads "dead" instead of freed memory;
 *  - freed slots wait in a FIFO quarantine and are reused only once more than
 *    VS_QUARANTINE others are waiting, so a stale handle keeps answering "dead"
 *    for a long while. A handle used after its slot was recycled for a new
 *    object of the same kind cannot be told apart (as with any pointer handle);
 *    the quarantine makes that need hundreds of intervening destroys.
 * The lock helpers (device.c) re-check liveness and the slot's generation after
 * taking the device lock, since destroy happens under that lock.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define VS_SLOTS_PER_CHUNK 256
#define VS_MAX_CHUNKS 4096
#define VS_QUARANTINE 256

typedef union vs_slot {
    vs_obj obj;
    struct vs_device dev;
    struct vs_vbar vbar;
    struct vs_scratch scratch;
    struct vs_host_buffer host;
} vs_slot;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static vs_slot *_Atomic chunks[VS_MAX_CHUNKS];
static _Atomic size_t nchunks;
static vs_slot *free_head, *free_tail;
static size_t nfree;

void *vs_pool_alloc(int kind)
{
    pthread_mutex_lock(&pool_lock);
    vs_slot *s = NULL;
    if (nfree > VS_QUARANTINE) {
        s = free_head;
        free_head = s->obj.next_free;
        if (!free_head)
            free_tail = NULL;
        nfree--;
    } else {
        size_t n = atomic_load(&nchunks);
        /* Fresh slots are handed out from the last chunk in order; a chunk's
         * unused tail is tracked with a cursor. */
        static size_t cursor = VS_SLOTS_PER_CHUNK;
        if (cursor == VS_SLOTS_PER_CHUNK) {
            if (n == VS_MAX_CHUNKS) {
                pthread_mutex_unlock(&pool_lock);
                return NULL;
            }
            vs_slot *c = calloc(VS_SLOTS_PER_CHUNK, sizeof(vs_slot));
            if (!c) {
                pthread_mutex_unlock(&pool_lock);
                return NULL;
            }
            atomic_store(&chunks[n], c);
            atomic_store(&nchunks, n + 1);
            n++;
            cursor = 0;
        }
        s = &atomic_load(&chunks[n - 1])[cursor++];
    }
    /* The header is only ever written atomically: readers validate it lock-free. */
    memset((char *)s + sizeof(vs_obj), 0, sizeof *s - sizeof(vs_obj));
    atomic_fetch_add(&s->obj.generation, 1);
    atomic_store(&s->obj.kind, (uint32_t)kind);
    atomic_store(&s->obj.magic, VS_MAGIC_ALIVE);
    pthread_mutex_unlock(&pool_lock);
    return s;
}

void vs_pool_free(void *obj)
{
    vs_slot *s = obj;
    pthread_mutex_lock(&pool_lock);
    atomic_store(&s->obj.magic, VS_MAGIC_DEAD);
    s->obj.next_free = NULL;
    if (free_tail)
        free_tail->obj.next_free = s;
    else
        free_head = s;
    free_tail = s;
    nfree++;
    pthread_mutex_unlock(&pool_lock);
}

bool vs_pool_live(const void *p, int kind)
{
    if (!p)
        return false;
    uintptr_t a = (uintptr_t)p;
    size_t n = atomic_load(&nchunks);
    for (size_t i = 0; i < n; i++) {
        uintptr_t base = (uintptr_t)atomic_load(&chunks[i]);
        if (a < base || a >= base + VS_SLOTS_PER_CHUNK * sizeof(vs_slot))
            continue;
        if ((a - base) % sizeof(vs_slot) != 0)
            return false;
        vs_obj *o = (vs_obj *)p;
        return atomic_load(&o->magic) == VS_MAGIC_ALIVE && atomic_load(&o->kind) == (uint32_t)kind;
    }
    return false;
}
