/* `vramswap info`: every compiled-in backend, whether it is usable (and why
 * not), and each available device's properties and memory budget. A device is
 * opened briefly with the default configuration (VRAMSWAP_CONF applies) to read
 * them; a device that cannot be opened (busy, driver failure) is reported as such
 * and does not make the command fail. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char info_usage[] =
    "usage: vramswap info [--json]\n"
    "\n"
    "Say whether allocation interception (the hook engine) was compiled in, then\n"
    "list the backends compiled into libvramswap, whether each is available (and\n"
    "why not), and for every available device its name, memory, mapping\n"
    "granularity, VBAR page size, whether it is integrated, and its budget.\n"
    "\n"
    "options:\n"
    "  --json    print one JSON object instead of text\n";

static int run_info(int argc, char **argv);

const vs_cli_command vs_cli_cmd_info = {
    .name = "info",
    .summary = "show backends, devices, memory and budgets",
    .usage = info_usage,
    .run = run_info,
};

/* What one device open taught us. */
typedef struct info_device {
    int ordinal;
    vs_status open_status;     /* VS_OK or why the device could not be opened */
    vs_status query_status;    /* VS_OK or why props/memory could not be read */
    vs_device_props props;
    vs_memory_info mem;
} info_device;

static void probe_device(const char *backend, int ordinal, info_device *d)
{
    memset(d, 0, sizeof *d);
    d->ordinal = ordinal;
    vs_device_config cfg;
    vs_status st = vs_device_config_init(&cfg);
    vs_device_t *dev = NULL;
    if (st == VS_OK)
        st = vs_device_open(backend, ordinal, &cfg, &dev);
    d->open_status = st;
    if (st != VS_OK)
        return;
    st = vs_device_get_props(dev, &d->props);
    if (st == VS_OK)
        st = vs_device_memory_info(dev, &d->mem);
    d->query_status = st;
    vs_status cst = vs_device_close(dev);
    if (d->query_status == VS_OK)
        d->query_status = cst;
}

static void print_device_text(const vs_backend_info *b, const info_device *d)
{
    char s1[32], s2[32], s3[32];
    printf("  %s:%d", b->name, d->ordinal);
    if (d->open_status != VS_OK) {
        printf("  cannot open: %s (%s)\n", vs_status_name(d->open_status), vs_status_str(d->open_status));
        return;
    }
    if (d->query_status != VS_OK) {
        printf("  query failed: %s (%s)\n", vs_status_name(d->query_status), vs_status_str(d->query_status));
        return;
    }
    const vs_device_props *p = &d->props;
    printf("  %s\n", p->name);
    printf("      total memory   %s (%llu bytes)\n", vs_cli_format_size(p->total_memory, s1, sizeof s1),
           (unsigned long long)p->total_memory);
    printf("      granularity    %s\n", vs_cli_format_size(p->granularity, s1, sizeof s1));
    printf("      page size      %s\n", vs_cli_format_size(p->page_size, s1, sizeof s1));
    printf("      integrated     %s\n", p->integrated ? "yes" : "no");
    printf("      budget         %s (total %s - headroom %s)\n",
           vs_cli_format_size(d->mem.budget, s1, sizeof s1), vs_cli_format_size(d->mem.total, s2, sizeof s2),
           vs_cli_format_size(d->mem.headroom, s3, sizeof s3));
    printf("      available      %s\n", vs_cli_format_size(d->mem.available, s1, sizeof s1));
}

static void print_device_json(const info_device *d)
{
    printf("{\"ordinal\": %d, \"status\": ", d->ordinal);
    vs_status st = d->open_status != VS_OK ? d->open_status : d->query_status;
    vs_cli_json_string(stdout, vs_status_name(st));
    if (st == VS_OK) {
        const vs_device_props *p = &d->props;
        printf(", \"name\": ");
        vs_cli_json_string(stdout, p->name);
        printf(", \"total_memory\": %llu, \"granularity\": %llu, \"page_size\": %llu, "
               "\"integrated\": %s, \"budget\": %llu, \"headroom\": %llu, \"available\": %llu",
               (unsigned long long)p->total_memory, (unsigned long long)p->granularity,
               (unsigned long long)p->page_size, p->integrated ? "true" : "false",
               (unsigned long long)d->mem.budget, (unsigned long long)d->mem.headroom,
               (unsigned long long)d->mem.available);
    }
    printf("}");
}

static int run_info(int argc, char **argv)
{
    static const vs_cli_option opts[] = {{"json", false}, {NULL, false}};
    bool json = false;
    vs_cli_args args;
    vs_cli_args_init(&args, argc, argv);
    for (;;) {
        const char *value;
        int o = vs_cli_next_option(&args, opts, &value);
        if (o == -1)
            break;
        if (o == -2)
            return vs_cli_usage_error(&vs_cli_cmd_info, "%s", args.error);
        json = true;
    }

    int status = VS_CLI_EXIT_OK;
    size_t count = vs_backend_count();
    /* Interception (the hook engine) may be compiled out: say so loudly, since
     * without it PyTorch's own allocations on a GPU are not seen. */
    int hooks = 0;
    char hook_desc[256] = "";
    vs_status hst = vs_hook_engine_info(&hooks, hook_desc, sizeof hook_desc);
    if (hst != VS_OK) {
        vs_cli_report_status("vs_hook_engine_info", hst);
        status = VS_CLI_EXIT_FAILURE;
    }
    if (json) {
        printf("{\"version\": ");
        vs_cli_json_string(stdout, vs_version());
        printf(", \"interception\": {\"available\": %s, \"detail\": ", hooks ? "true" : "false");
        vs_cli_json_string(stdout, hook_desc);
        printf("}, \"backends\": [");
    } else {
        printf("vramswap %s, %zu backend%s compiled in\n\n", vs_version(), count, count == 1 ? "" : "s");
        if (hooks)
            printf("interception: available (hook engine: %s)\n\n", hook_desc);
        else
            printf("interception: NOT AVAILABLE: this libvramswap was built without the hook engine\n"
                   "  (%s).\n"
                   "  Allocations made directly through the CUDA/HIP/Level Zero drivers (PyTorch's own\n"
                   "  tensors) are not intercepted or limited; rebuild with Capstone to get it.\n\n",
                   hook_desc);
        printf("backends:\n");
    }
    /* Text output lists backends first, then devices; keep the infos. */
    vs_backend_info *infos = calloc(count ? count : 1, sizeof *infos);
    if (!infos) {
        fprintf(stderr, "vramswap: out of memory\n");
        return VS_CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < count; i++) {
        vs_status st = vs_backend_get_info(i, &infos[i]);
        if (st != VS_OK) {
            vs_cli_report_status("vs_backend_get_info", st);
            status = VS_CLI_EXIT_FAILURE;
            infos[i].available = 0;
            snprintf(infos[i].name, sizeof infos[i].name, "#%zu", i);
            snprintf(infos[i].why, sizeof infos[i].why, "vs_backend_get_info failed: %s", vs_status_name(st));
        }
        const vs_backend_info *b = &infos[i];
        if (json) {
            printf("%s{\"name\": ", i ? ", " : "");
            vs_cli_json_string(stdout, b->name);
            printf(", \"available\": %s, \"device_count\": %d, \"why\": ", b->available ? "true" : "false",
                   b->available ? b->device_count : 0);
            vs_cli_json_string(stdout, b->available ? "" : b->why);
            printf(", \"devices\": [");
            for (int d = 0; b->available && d < b->device_count; d++) {
                info_device dev;
                probe_device(b->name, d, &dev);
                printf("%s", d ? ", " : "");
                print_device_json(&dev);
            }
            printf("]}");
        } else if (b->available) {
            printf("  %-12s available, %d device%s\n", b->name, b->device_count, b->device_count == 1 ? "" : "s");
        } else {
            printf("  %-12s unavailable: %s\n", b->name, b->why[0] ? b->why : "(no reason given)");
        }
    }
    if (json) {
        printf("]}\n");
    } else {
        bool any = false;
        printf("\ndevices:\n");
        for (size_t i = 0; i < count; i++) {
            for (int d = 0; infos[i].available && d < infos[i].device_count; d++) {
                info_device dev;
                probe_device(infos[i].name, d, &dev);
                print_device_text(&infos[i], &dev);
                any = true;
            }
        }
        if (!any)
            printf("  (none)\n");
    }
    free(infos);
    return status;
}
