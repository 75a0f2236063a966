/* A snapshot of this process's address space, from /proc/self/maps.
 *
 * The hook engine needs it for three things: the protection of the pages it
 * patches (to restore it afterwards), how many bytes of a function may be read
 * without faulting (decoding must not run off the end of a mapping), and the
 * free gaps near a target where a trampoline can be placed (hook_mem.c).
 * A snapshot can be stale the moment it is read (another thread may mmap);
 * every user treats it as a hint and checks what mmap/mprotect really did.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hook_internal.h"

/* Read the whole file into a NUL-terminated heap buffer. */
static vs_status read_file(const char *path, char **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return VS_ERR_NOT_SUPPORTED;
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return VS_ERR_OUT_OF_MEMORY;
    }
    for (;;) {
        if (cap - len < 4096) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                close(fd);
                return VS_ERR_OUT_OF_MEMORY;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            close(fd);
            return VS_ERR_NOT_SUPPORTED;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    return VS_OK;
}

/* Parse one line: "start-end perms offset dev inode [path]". */
static int parse_line(const char *line, vs_hook_map *m)
{
    char *end;
    unsigned long long start = strtoull(line, &end, 16);
    if (*end != '-')
        return 0;
    unsigned long long stop = strtoull(end + 1, &end, 16);
    if (*end != ' ' || stop <= start)
        return 0;
    const char *perms = end + 1;
    if (strlen(perms) < 4)
        return 0;
    m->start = (uintptr_t)start;
    m->end = (uintptr_t)stop;
    m->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
              (perms[2] == 'x' ? PROT_EXEC : 0);
    m->is_stack = strstr(perms, "[stack]") != NULL;
    return 1;
}

vs_status vs_hook_maps_read(vs_hook_maps *maps)
{
    if (!maps)
        return VS_ERR_INVALID_ARGUMENT;
    char *text;
    vs_status st = read_file("/proc/self/maps", &text);
    if (st != VS_OK)
        return st;
    size_t lines = 1;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    vs_hook_map *v = calloc(lines, sizeof *v);
    if (!v) {
        free(text);
        return VS_ERR_OUT_OF_MEMORY;
    }
    size_t n = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (n < lines && parse_line(line, &v[n]) && (n == 0 || v[n].start >= v[n - 1].end))
            n++;
        if (!nl)
            break;
        line = nl + 1;
    }
    free(text);
    maps->v = v;
    maps->n = n;
    return VS_OK;
}

void vs_hook_maps_free(vs_hook_maps *maps)
{
    if (!maps)
        return;
    free(maps->v);
    maps->v = NULL;
    maps->n = 0;
}

const vs_hook_map *vs_hook_maps_find(const vs_hook_maps *maps, uintptr_t addr)
{
    if (!maps)
        return NULL;
    size_t lo = 0, hi = maps->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < maps->v[mid].start)
            hi = mid;
        else if (addr >= maps->v[mid].end)
            lo = mid + 1;
        else
            return &maps->v[mid];
    }
    return NULL;
}

size_t vs_hook_maps_readable(const vs_hook_maps *maps, uintptr_t addr)
{
    const vs_hook_map *m = vs_hook_maps_find(maps, addr);
    if (!m || !(m->prot & PROT_READ))
        return 0;
    size_t n = m->end - addr;
    const vs_hook_map *last = maps->v + maps->n;
    for (const vs_hook_map *next = m + 1;
         next < last && next->start == (next - 1)->end && (next->prot & PROT_READ); next++)
        n += next->end - next->start;
    return n;
}
