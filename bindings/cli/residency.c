/* A VBAR's residency map as a short string, e.g. "RRRRRRRR........" (see cli.h). */
#include "cli.h"

void vs_cli_render_residency(const uint8_t *map, size_t pages, size_t groups, char *out)
{
    if (groups > pages)
        groups = pages;
    for (size_t g = 0; g < groups; g++) {
        /* Group g covers pages [g*pages/groups, (g+1)*pages/groups): every page
         * lands in exactly one group and no group is empty. */
        size_t first = g * pages / groups;
        size_t last = (g + 1) * pages / groups;
        size_t resident = 0;
        bool pinned = false;
        for (size_t p = first; p < last; p++) {
            if (map[p] & VS_PAGE_RESIDENT)
                resident++;
            if (map[p] & VS_PAGE_PINNED)
                pinned = true;
        }
        out[g] = pinned ? 'P' : resident == last - first ? 'R' : resident ? 'r' : '.';
    }
    out[groups] = '\0';
}
